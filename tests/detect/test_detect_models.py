"""The detection models from configs/mmdet/*.py: what the files pin, and every model under every method."""

from __future__ import annotations

import math

import pytest
import torch
from detection_stack import require_detection_stack
from torch import nn

require_detection_stack()

from mmdet.registry import MODELS  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402
from mmengine.config import ConfigDict  # noqa: E402

import pws.detect.registry  # noqa: E402, F401
from pws.detect.layers import PWS, SN, WN, HeConv, LN2d  # noqa: E402
from pws.detect.models import (  # noqa: E402
    CONFIG_FILES,
    config_path,
    describe_differences,
    load_config,
    model_config,
    ssd_anchor_generator,
    ssd_feature_sizes,
)
from pws.models.vgg import VGG16_LAYERS  # noqa: E402
from pws.nn.factory import METHODS  # noqa: E402
from pws.nn.instance_norm import InstanceNorm2d  # noqa: E402

register_all_modules(init_default_scope=False)
pytestmark = pytest.mark.usefixtures("mmdet_scope")

CONV = {"pws": PWS, "wn": WN, "none": HeConv}
NORM = {
    "bn": nn.BatchNorm2d,
    "gn": nn.GroupNorm,
    "in": InstanceNorm2d,
    "ln": LN2d,
    "sn": SN,
}
NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm, SN)
BASES = {
    "ssd_vgg16": "mmdet::pascal_voc/ssd300_voc0712.py",
    "ssd_r50": "./ssd320_vgg16.py",
    "mask_rcnn_r50_fpn": "mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py",
}


def _build(model: str, method: str, **kwargs) -> nn.Module:
    num_classes = 80 if model.startswith("mask") else 20
    detector = MODELS.build(
        ConfigDict(model_config(model, method, num_classes=num_classes, **kwargs)["model"])
    )
    detector.init_weights()
    return detector


def _parts(detector: nn.Module) -> list[nn.Module]:
    """The parts the method goes into: backbone and SSD's extra layers (the neck)."""
    parts = [detector.backbone]
    if type(detector).__name__ == "SingleStageDetector":
        parts.append(detector.neck)
    return parts


# ------------------------------------------------------------------------------- what the files pin


@pytest.mark.parametrize("model", list(CONFIG_FILES))
def test_each_file_inherits_mmdets_config_and_lists_its_differences(model: str) -> None:
    text = config_path(model).read_text()
    assert f"_base_ = [{BASES[model]!r}]".replace("'", '"') in text
    differences = describe_differences(model)
    assert len(differences) >= 3 and all(len(d) > 40 for d in differences)
    cfg = load_config(model)
    assert cfg["custom_imports"] == {"imports": ["pws.detect.registry"], "allow_failed_imports": False}
    backbone = cfg["model"]["backbone"]
    assert backbone["init_cfg"] is None  # from scratch, nothing downloaded
    if model == "ssd_vgg16":
        assert backbone["type"] == "NormSSDVGG"
        assert any("non-dilated conv6" in d for d in differences)
    else:
        assert backbone["type"] == "ResNet" and backbone["zero_init_residual"] is False
        assert backbone.get("frozen_stages", -1) == -1 and backbone["norm_eval"] is False
    joined = " ".join(differences)
    for word in {
        "ssd_vgg16": ("320", "anchors", "FixedSSDHead", "scratch"),
        "ssd_r50": ("ResNet-50", "L2Norm"),
    }.get(model, ("download", "zero_init_residual", "neck_heads")):
        assert word in joined, word


@pytest.mark.parametrize("model", ["ssd_vgg16", "ssd_r50"])
def test_ssd320_files_pin_the_input_the_anchors_and_mmdets_settings(model: str) -> None:
    cfg = load_config(model)
    ssd = cfg["model"]
    assert cfg["input_size"] == 320 and ssd["type"] == "SingleStageDetector"
    assert ssd["bbox_head"]["type"] == "FixedSSDHead" and ssd["bbox_head"]["num_classes"] == 20
    anchors = ssd["bbox_head"]["anchor_generator"]
    assert anchors["min_sizes"] == [32, 64, 118, 172, 227, 281]
    assert anchors["max_sizes"] == [64, 118, 172, 227, 281, 336]
    assert anchors["strides"] == [8, 16, 32, 64, 107, 320]
    rule = ssd_anchor_generator(320, "voc")  # SSD's rule at 320 on VOC's ranges: the file's numbers
    assert {k: anchors[k] for k in rule} == rule
    # mmdet's SSD augmentation and test settings, at 320
    assert [t["type"] for t in cfg["train_pipeline"]] == [
        "LoadImageFromFile",
        "LoadAnnotations",
        "Expand",
        "MinIoURandomCrop",
        "Resize",
        "RandomFlip",
        "PhotoMetricDistortion",
        "PackDetInputs",
    ]
    resizes = [t for t in cfg["train_pipeline"] + cfg["test_pipeline"] if t["type"] == "Resize"]
    assert [t["scale"] for t in resizes] == [(320, 320), (320, 320)]
    datasets = cfg["train_dataloader"]["dataset"]["dataset"]["datasets"]
    assert all(d["pipeline"] == cfg["train_pipeline"] for d in datasets)
    assert cfg["val_dataloader"]["dataset"]["pipeline"] == cfg["test_pipeline"]
    assert ssd["test_cfg"]["nms"]["iou_threshold"] == 0.45 and ssd["test_cfg"]["max_per_img"] == 200
    assert cfg["custom_hooks"] == [{"type": "NumClassCheckHook"}]
    # from scratch: the ImageNet pixel std (mmdet's SSD300 keeps std 1 for caffe's pretrained VGG-16)
    assert ssd["data_preprocessor"]["std"] == [58.395, 57.12, 57.375]


def test_ssd320_feature_maps_match_the_anchor_strides() -> None:
    """The built SSD320s give the six maps the anchors assume (40, 20, 10, 5, 3, 1); conv6 is not dilated."""
    for model in ("ssd_vgg16", "ssd_r50"):
        detector = _build(model, "bn").eval()
        with torch.no_grad():
            feats = detector.extract_feat(torch.zeros(1, 3, 320, 320))
        assert [f.shape[-1] for f in feats] == ssd_feature_sizes(320) == [40, 20, 10, 5, 3, 1]
        if model == "ssd_vgg16":
            conv6 = detector.backbone.stage2[-2].conv
            assert conv6.kernel_size == (3, 3) and conv6.dilation == (1, 1) and conv6.out_channels == 1024


def test_ssd_anchors_follow_the_data_and_the_input_size() -> None:
    coco = model_config("ssd_vgg16", "pws", num_classes=80, data_format="coco")["model"]["bbox_head"]
    assert coco["anchor_generator"]["min_sizes"] == [22, 48, 105, 163, 220, 278]
    assert coco["num_classes"] == 80
    cfg = model_config("ssd_vgg16", "pws", num_classes=20, input_size=300)
    assert cfg["model"]["bbox_head"]["anchor_generator"]["min_sizes"] == [30, 60, 111, 162, 213, 264]
    assert [t["scale"] for t in cfg["test_pipeline"] if t["type"] == "Resize"] == [(300, 300)]


def test_mask_rcnn_file_is_mmdets_model() -> None:
    cfg = load_config("mask_rcnn_r50_fpn")
    model = cfg["model"]
    assert model["type"] == "MaskRCNN" and model["roi_head"]["bbox_head"]["type"] == "Shared2FCBBoxHead"
    assert (
        model["roi_head"]["bbox_head"]["num_classes"] == model["roi_head"]["mask_head"]["num_classes"] == 80
    )
    assert model["backbone"]["norm_cfg"] == {"type": "BN", "requires_grad": True}  # mmdet's, per run replaced
    assert [t["scale"] for t in cfg["train_pipeline"] if t["type"] == "Resize"] == [(1333, 800)]
    assert cfg["val_evaluator"]["metric"] == ["bbox", "segm"]


def test_unknown_models_and_options_fail_clearly() -> None:
    with pytest.raises(ValueError, match="unknown detection model"):
        config_path("yolo")
    with pytest.raises(ValueError, match="unknown option"):
        model_config("ssd_vgg16", "pws", num_classes=20, neck_heads="method")
    with pytest.raises(ValueError, match="neck_heads"):
        model_config("mask_rcnn_r50_fpn", "pws", num_classes=80, neck_heads="all")


# ------------------------------------------------------------------------- every model, every method


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
        if model == "ssd_vgg16":
            assert norms == []
        else:  # Table 5's LayerNorm after the stem conv (GroupNorm of one group), no other norm
            assert norms == [detector.backbone.norm1] and type(norms[0]) is LN2d and norms[0].num_groups == 1
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
        assert detector.bbox_head.num_classes == 20
        # the prediction convs stay plain
        assert {type(m) for m in detector.bbox_head.modules() if isinstance(m, nn.Conv2d)} == {nn.Conv2d}
    else:
        assert detector.roi_head.bbox_head.num_classes == detector.roi_head.mask_head.num_classes == 80
    # from scratch: nothing frozen
    assert all(p.requires_grad for p in detector.backbone.parameters())


def test_width_a_quarter_is_a_quarter_of_every_layer_and_gn_groups_fit() -> None:
    """width 0.25 (the smoke scale's): every conv of SSD's VGG-16 has a quarter of the paper's channels (its
    first block 16), with gcd(32, C) GN groups (16 there); so have Mask R-CNN's ResNet-50 stages, FPN and
    box head."""
    full = [c for c in VGG16_LAYERS if c != "M"] + [1024, 1024]
    detector = _build("ssd_vgg16", "gn", width=0.25)
    convs = [m for m in detector.backbone.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [int(c) // 4 for c in full]
    groups = [m.num_groups for m in detector.backbone.modules() if isinstance(m, nn.GroupNorm)]
    assert groups == [math.gcd(32, int(c) // 4) for c in full] and groups[:2] == [16, 16]
    assert detector.bbox_head.in_channels == (128, 256, 128, 64, 64, 64)
    mask_rcnn = _build("mask_rcnn_r50_fpn", "gn", width=0.25)
    assert mask_rcnn.backbone.conv1.out_channels == 16 and mask_rcnn.backbone.feat_dim == 512
    assert mask_rcnn.neck.out_channels == 64 and mask_rcnn.roi_head.bbox_head.fc_out_channels == 256
    features = mask_rcnn.backbone(torch.randn(1, 3, 64, 64))
    assert [f.shape[1] for f in features] == [64, 128, 256, 512]


def test_pws_everywhere_in_mask_rcnn_neck_and_heads() -> None:
    """neck_heads='method': PWS (gamma 1e-1, equiv: the authors') in FPN, box-head convs, mask head."""
    detector = _build("mask_rcnn_r50_fpn", {"method": "pws", "gamma": 1e-4}, neck_heads="method")
    backbone = [m for m in detector.backbone.modules() if isinstance(m, nn.Conv2d)]
    assert all(type(m) is PWS and m.gamma == 1e-4 and m.gamma_mode == "var" for m in backbone)
    rest = [detector.neck, detector.roi_head.bbox_head, detector.roi_head.mask_head]
    pws = [m for part in rest for m in part.modules() if type(m) is PWS]
    assert len(pws) >= 4 + 4 + 4 + 4  # FPN lateral + output convs, 4 box-head convs, 4 mask-head convs
    assert all(m.gamma == 0.1 and m.gamma_mode == "equiv" for m in pws)
    assert type(detector.roi_head.bbox_head).__name__ == "Shared4Conv1FCBBoxHead"
    # the RPN conv and the predictors stay plain
    assert type(detector.rpn_head.rpn_conv) is nn.Conv2d
    assert [m for m in detector.modules() if isinstance(m, NORM_TYPES)] == [detector.backbone.norm1]  # stem


def test_mask_rcnn_head_norm_is_a_layer_norm_after_every_fpn_conv() -> None:
    """head_norm='layer': GroupNorm of one group (a LayerNorm over each map) after the 4 lateral and 4
    output convs of the FPN, nothing else changed; with PWS in the backbone its output maps are normalized."""
    detector = _build("mask_rcnn_r50_fpn", {"method": "pws", "gamma": 1e-4}, head_norm="layer", width=0.25)
    norms = [m for m in detector.neck.modules() if isinstance(m, nn.GroupNorm)]
    assert len(norms) == 8 and all(m.num_groups == 1 for m in norms)
    assert [m for m in detector.backbone.modules() if isinstance(m, NORM_TYPES)] == [detector.backbone.norm1]
    assert all(c.conv.bias is None for c in [*detector.neck.lateral_convs, *detector.neck.fpn_convs])
    torch.manual_seed(0)
    features = detector.neck(detector.backbone(10 * torch.randn(1, 3, 64, 96)))
    for level in features[:4]:  # each FPN conv's output is normalized (the fifth level is a max pool of one)
        flat = level.flatten(1)
        assert torch.allclose(flat.mean(1), torch.zeros(1), atol=1e-5)
        assert torch.allclose(flat.std(1, correction=0), torch.ones(1), atol=1e-3)


def test_gn_mask_rcnn_is_mmdets_gn_all() -> None:
    detector = _build("mask_rcnn_r50_fpn", "gn", neck_heads="method")
    gns = [m for m in detector.modules() if isinstance(m, nn.GroupNorm)]
    # backbone 53 + FPN 8 + box head 4 + mask head 4
    assert len(gns) == 53 + 8 + 4 + 4


def test_local_checkpoint_only(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        model_config("mask_rcnn_r50_fpn", "bn", num_classes=80, backbone_checkpoint="torchvision://resnet50")
    path = tmp_path / "r50.pth"
    torch.save({}, path)
    backbone = model_config("mask_rcnn_r50_fpn", "bn", num_classes=80, backbone_checkpoint=str(path))[
        "model"
    ]["backbone"]
    assert backbone["init_cfg"] == {"type": "Pretrained", "checkpoint": str(path.resolve())}
    assert backbone["frozen_stages"] == 1 and backbone["norm_eval"] is True  # mmdet's start


@pytest.mark.parametrize(
    ("model", "method"), [*(("ssd_vgg16", m) for m in METHODS), ("ssd_r50", "pws"), ("ssd_r50", "in")]
)
def test_ssd_trains_a_step(model: str, method: str) -> None:
    """SSD320 computes a finite training loss and a gradient for every backbone parameter, with every
    method (IN included: SSD's last map is 1x1, which PyTorch's instance norm refuses in training)."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    detector = _build(model, method, width=0.25)
    sample = DetDataSample(metainfo=dict(img_shape=(320, 320), pad_shape=(320, 320), scale_factor=(1.0, 1.0)))
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor([[30.0, 40.0, 200.0, 220.0]]), labels=torch.tensor([3])
    )
    losses = detector.loss(torch.randn(2, 3, 320, 320), [sample, sample])  # BN: 2 values on the 1x1 map
    total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(v) for v in losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert all(p.grad is not None for p in detector.backbone.parameters() if p.requires_grad)
