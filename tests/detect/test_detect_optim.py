"""alpha has weight decay 0 in the optimizer that mmengine builds from the app's config."""

from __future__ import annotations

import pytest
from detection_stack import require_detection_stack

from .conftest import compose_detect

require_detection_stack()

from mmdet.registry import MODELS  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402
from mmengine.config import ConfigDict  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402

import pws.detect.registry  # noqa: E402, F401
from pws.detect.app import checked_plan  # noqa: E402
from pws.detect.config import build_config  # noqa: E402
from pws.nn import PWSConv2d  # noqa: E402

register_all_modules(init_default_scope=False)
pytestmark = pytest.mark.usefixtures("mmdet_scope")


@pytest.mark.parametrize(
    "overrides",
    [["norm=pws"], ["norm=pws", "model=mask_rcnn_r50_fpn", "data=synthetic_coco", "model.neck_heads=method"]],
)
def test_alpha_has_no_weight_decay(overrides: list[str]) -> None:
    settings = checked_plan(compose_detect(overrides), 1).settings
    config = build_config(settings, data_root="/unused")
    model = MODELS.build(ConfigDict(config["model"]))
    wrapper = build_optim_wrapper(model, config["optim_wrapper"])
    alphas = {id(m.alpha) for m in model.modules() if isinstance(m, PWSConv2d)}
    assert len(alphas) > 20
    decay_of = {}
    for group in wrapper.optimizer.param_groups:
        for p in group["params"]:
            decay_of[id(p)] = group["weight_decay"]
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(decay_of) == len(trainable)  # every trainable parameter is optimized exactly once
    for p in trainable:
        expected = 0.0 if id(p) in alphas else settings.sgd.weight_decay
        assert decay_of[id(p)] == expected
    assert settings.sgd.weight_decay > 0
