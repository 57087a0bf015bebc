"""Every detection model builds under every normalization method, with the method where the paper puts it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from .conftest import require_stack

require_stack()

from mmdet.registry import MODELS  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402
from mmengine.config import ConfigDict  # noqa: E402

import pws.detect.registry  # noqa: E402, F401
from pws.detect.layers import PWS, SN, WN, HeConv, LN2d  # noqa: E402
from pws.detect.models import mask_rcnn_r50_fpn, ssd_r50, ssd_vgg16  # noqa: E402
from pws.nn.factory import METHODS  # noqa: E402

register_all_modules(init_default_scope=True)

CONV = {"pws": PWS, "wn": WN, "none": HeConv}
NORM = {
    "bn": nn.BatchNorm2d,
    "gn": nn.GroupNorm,
    "in": nn.InstanceNorm2d,
    "ln": LN2d,
    "sn": SN,
}
NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm, SN)


def _build(model: str, method: str) -> nn.Module:
    if model == "ssd_vgg16":
        cfg = ssd_vgg16(method, num_classes=20)
    elif model == "ssd_r50":
        cfg = ssd_r50(method, num_classes=20)
    else:
        cfg = mask_rcnn_r50_fpn(method, num_classes=80)
    detector = MODELS.build(ConfigDict(cfg))
    detector.init_weights()
    return detector


def _parts(detector: nn.Module) -> list[nn.Module]:
    """The parts the method goes into: backbone and SSD's extra layers (the neck)."""
    parts = [detector.backbone]
    if type(detector).__name__ == "SingleStageDetector":
        parts.append(detector.neck)
    return parts


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("model", ["ssd_vgg16", "ssd_r50", "mask_rcnn_r50_fpn"])
def test_every_model_builds_with_every_method(model: str, method: str) -> None:
    detector = _build(model, method)
    convs = [m for part in _parts(detector) for m in part.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for part in _parts(detector) for m in part.modules() if isinstance(m, NORM_TYPES)]
    assert len(convs) >= (23 if model == "ssd_vgg16" else 53)
    if method in CONV:
        # every conv of the backbone and the extra layers uses the method; no BN (no norm) remains
        assert all(type(c) is CONV[method] for c in convs), {type(c).__name__ for c in convs}
        assert all(c.bias is not None for c in convs)  # beta, also where mmdet's ResNet asks bias=False
        assert norms == []
    else:
        assert all(type(c) is HeConv and c.bias is None for c in convs)
        expected = NORM[method]
        found = [m for part in _parts(detector) for m in part.modules() if isinstance(m, expected)]
        assert len(found) == len(convs)  # one norm after every conv
        if method == "gn":
            assert all(m.num_groups == 32 for m in found)
        if method == "ln":
            assert all(m.num_groups == 1 for m in found)
    if model.startswith("ssd"):
        assert type(detector.bbox_head).__name__ == "FixedSSDHead"
    # from scratch: nothing frozen
    assert all(p.requires_grad for p in detector.backbone.parameters())


def test_pws_everywhere_in_mask_rcnn_neck_and_heads() -> None:
    """neck_heads='method': PWS (gamma 1e-1, equiv: the authors') in FPN, box-head convs, mask head."""
    cfg = mask_rcnn_r50_fpn({"method": "pws", "gamma": 1e-4}, num_classes=80, neck_heads="method")
    detector = MODELS.build(ConfigDict(cfg))
    backbone = [m for m in detector.backbone.modules() if isinstance(m, nn.Conv2d)]
    assert all(type(m) is PWS and m.gamma == 1e-4 and m.gamma_mode == "var" for m in backbone)
    rest = [detector.neck, detector.roi_head.bbox_head, detector.roi_head.mask_head]
    pws = [m for part in rest for m in part.modules() if type(m) is PWS]
    assert len(pws) >= 4 + 4 + 4 + 4  # FPN lateral + output convs, 4 box-head convs, 4 mask-head convs
    assert all(m.gamma == 0.1 and m.gamma_mode == "equiv" for m in pws)
    assert type(detector.roi_head.bbox_head).__name__ == "Shared4Conv1FCBBoxHead"
    # the RPN conv and the predictors stay plain
    assert type(detector.rpn_head.rpn_conv) is nn.Conv2d
    assert not [m for m in detector.modules() if isinstance(m, NORM_TYPES)]


def test_gn_mask_rcnn_is_mmdets_gn_all() -> None:
    detector = MODELS.build(ConfigDict(mask_rcnn_r50_fpn("gn", num_classes=80, neck_heads="method")))
    gns = [m for m in detector.modules() if isinstance(m, nn.GroupNorm)]
    # backbone 53 + FPN 8 + box head 4 + mask head 4
    assert len(gns) == 53 + 8 + 4 + 4


def test_local_checkpoint_only(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        mask_rcnn_r50_fpn("bn", backbone_checkpoint="torchvision://resnet50")
    path = tmp_path / "r50.pth"
    torch.save({}, path)
    cfg = mask_rcnn_r50_fpn("bn", backbone_checkpoint=str(path))
    backbone = cfg["backbone"]
    assert backbone["init_cfg"] == {"type": "Pretrained", "checkpoint": str(path.resolve())}
    assert backbone["frozen_stages"] == 1 and backbone["norm_eval"] is True


def test_ssd_r50_forward_loss() -> None:
    """SSD with the ResNet-50 backbone trains a step at 320 (PWS, no norm anywhere)."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    detector = _build("ssd_r50", "pws")
    sample = DetDataSample(metainfo=dict(img_shape=(320, 320), pad_shape=(320, 320), scale_factor=(1.0, 1.0)))
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor([[30.0, 40.0, 200.0, 220.0]]), labels=torch.tensor([3])
    )
    losses = detector.loss(torch.randn(1, 3, 320, 320), [sample])
    total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(v) for v in losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert all(p.grad is not None for p in detector.backbone.parameters() if p.requires_grad)
