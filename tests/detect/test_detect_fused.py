"""``train.fused_pws`` on a detector: the engine's hook fuses every PWS layer of the built SSD (backbone and
extra layers) and its loss and gradients are the per-layer path's (float64)."""

from __future__ import annotations

import copy
import logging
from types import SimpleNamespace

import torch
from detection_stack import require_detection_stack

from pws.engine.hooks import FusedStandardizationHook
from pws.nn.fused import fusion_of, pws_layers

require_detection_stack()


def test_the_hook_fuses_the_built_detector_with_the_same_loss_and_gradients() -> None:
    from mmdet.structures import DetDataSample
    from mmengine.config import ConfigDict
    from mmengine.registry import MODELS
    from mmengine.structures import InstanceData

    from pws.detect.models import model_config

    torch.manual_seed(0)
    config = model_config("ssd_vgg16", "pws", num_classes=20, width=0.125)["model"]
    detector = MODELS.build(ConfigDict(config))
    detector.init_weights()
    # float64: in float32 SSD's hard-negative mining may pick other negatives on rounding-level changes
    detector = detector.double()
    fused = copy.deepcopy(detector)
    hook = FusedStandardizationHook()
    hook.before_run(SimpleNamespace(model=fused, logger=logging.getLogger("test")))
    assert hook.layers == len(pws_layers(detector)) > 10 and fusion_of(fused) is not None
    assert fusion_of(detector) is None
    assert fused.state_dict().keys() == detector.state_dict().keys()

    sample = DetDataSample(metainfo=dict(img_shape=(320, 320), pad_shape=(320, 320), scale_factor=(1.0, 1.0)))
    boxes = torch.tensor([[30.0, 40.0, 200.0, 220.0]])
    sample.gt_instances = InstanceData(bboxes=boxes, labels=torch.tensor([3]))
    x = torch.randn(2, 3, 320, 320, dtype=torch.float64)
    totals = []
    for model in (detector, fused):
        losses = model.loss(x, [sample, sample])
        total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(v) for v in losses.values())
        total.backward()
        totals.append(total.detach())
    torch.testing.assert_close(totals[1], totals[0], rtol=1e-10, atol=0.0)
    for a, b in zip(detector.parameters(), fused.parameters(), strict=True):
        if a.grad is not None:
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-8, atol=1e-11)
