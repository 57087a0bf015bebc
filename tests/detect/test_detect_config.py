"""The Hydra configs of the detection app and the mmengine configs built from them (no mmdet needed)."""

from __future__ import annotations

import math

import pytest

from pws.detect.config import build_config, resolve_settings, shorten_milestones
from pws.detect.models import method_cfgs, ssd_anchor_generator, ssd_feature_sizes
from pws.nn.factory import METHODS

from .conftest import compose_detect

MODELS = ("ssd_vgg16", "ssd_r50", "mask_rcnn_r50_fpn")


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("scale", ["smoke", "full"])
def test_every_model_composes_at_every_scale(model: str, scale: str) -> None:
    data = "synthetic_coco" if model.startswith("mask") else "synthetic_voc"
    cfg = compose_detect([f"model={model}", f"data={data}", f"scale={scale}"])
    settings = resolve_settings(cfg)
    config = build_config(settings, data_root="/nonexistent", work_dir="/tmp/unused")
    assert config["model"]["type"] == ("MaskRCNN" if model.startswith("mask") else "SingleStageDetector")
    assert config["custom_imports"]["imports"] == ["pws.detect.registry"]
    # alpha's zero weight decay goes through paramwise_cfg
    assert config["optim_wrapper"]["paramwise_cfg"] == {"custom_keys": {".alpha": {"decay_mult": 0.0}}}


def test_full_scale_is_the_papers_voc_setting() -> None:
    s = resolve_settings(compose_detect(["scale=full", "data=voc0712"]))
    assert (s.model, s.method.method, s.method.options["gamma"]) == ("ssd_vgg16", "pws", 1e-3)
    assert (s.epochs, s.milestones, s.lr, s.momentum, s.weight_decay) == (240, [90, 170], 1e-2, 0.9, 5e-4)
    assert (s.batch_size, s.input_size, s.clip_grad_max_norm, s.warmup_iters) == (16, 320, None, 0)
    config = build_config(s, data_root="/data/VOCdevkit", work_dir="/tmp/unused")
    # VOC07+12 trainval -> VOC07 test, the VOC2007 11-point AP
    assert [d["ann_file"] for d in config["train_dataloader"]["dataset"]["datasets"]] == [
        "VOC2007/ImageSets/Main/trainval.txt",
        "VOC2012/ImageSets/Main/trainval.txt",
    ]
    assert config["val_dataloader"]["dataset"]["ann_file"] == "VOC2007/ImageSets/Main/test.txt"
    assert config["val_evaluator"] == dict(type="VOCMetric", metric="mAP", eval_mode="11points", iou_thrs=0.5)
    assert config["optim_wrapper"]["clip_grad"] is None
    assert [p["type"] for p in config["param_scheduler"]] == ["MultiStepLR"]


@pytest.mark.parametrize(
    ("schedule", "epochs", "milestones", "batch", "lr", "wd"),
    [
        ("ssd_coco_1x", 80, [30, 50, 70], 16, 1e-2, 5e-4),
        ("ssd_coco_2x", 150, [60, 100, 140], 16, 1e-2, 5e-4),
        ("mask_rcnn_1x", 12, [8, 11], 4, 5e-3, 1e-4),
    ],
)
def test_coco_schedules(
    schedule: str, epochs: int, milestones: list[int], batch: int, lr: float, wd: float
) -> None:
    model = "mask_rcnn_r50_fpn" if schedule.startswith("mask") else "ssd_vgg16"
    s = resolve_settings(
        compose_detect([f"model={model}", "data=coco", f"schedule={schedule}", "scale=full"])
    )
    assert (s.epochs, s.milestones, s.batch_size, s.lr, s.weight_decay) == (epochs, milestones, batch, lr, wd)
    config = build_config(s, data_root="/data/coco", work_dir="/tmp/unused")
    metrics = config["val_evaluator"]["metric"]
    assert metrics == (["bbox", "segm"] if model.startswith("mask") else ["bbox"])


def test_explicit_keys_override_scale_and_schedule() -> None:
    s = resolve_settings(
        compose_detect(
            ["optim.lr=1e-3", "data.batch_size=8", "norm.gamma=1e-5", "seed=3", "optim.weight_decay=0"]
        )
    )
    assert (s.lr, s.batch_size, s.method.options["gamma"], s.seed, s.weight_decay) == (1e-3, 8, 1e-5, 3, 0.0)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lr=0", "optim.lr"),
        ("optim.lr=-1", "optim.lr"),
        ("data.batch_size=0", "data.batch_size"),
        ("norm.gamma=-1", "gamma"),
        ("model.name=yolo", "unknown detection model"),
    ],
)
def test_invalid_values_fail_with_one_clear_message(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_settings(compose_detect([override]))


def test_mask_rcnn_needs_coco() -> None:
    with pytest.raises(ValueError, match="COCO"):
        resolve_settings(compose_detect(["model=mask_rcnn_r50_fpn", "data=synthetic_voc"]))


def test_smoke_scale_shortens_the_schedule() -> None:
    s = resolve_settings(
        compose_detect(["model=mask_rcnn_r50_fpn", "data=synthetic_coco", "schedule=mask_rcnn_1x"])
    )
    assert s.epochs == 2 and s.milestones == [1] and s.warmup_iters == 2
    assert s.input_size == [320, 192] and s.test_score_thr == 0.0
    assert shorten_milestones([90, 170], 240, 240) == [90, 170]
    assert shorten_milestones([90, 170], 24, 240) == [9, 17]


def test_ssd320_anchors_and_feature_maps() -> None:
    assert ssd_feature_sizes(320) == [40, 20, 10, 5, 3, 1]
    assert ssd_feature_sizes(300) == [38, 19, 10, 5, 3, 1]
    voc = ssd_anchor_generator(320, "voc")
    assert voc["min_sizes"] == [32, 64, 118, 172, 227, 281]
    assert voc["max_sizes"] == [64, 118, 172, 227, 281, 336]
    assert voc["strides"] == [8, 16, 32, 64, 107, 320]
    # the same rule gives mmdet's hard-coded SSD300 VOC anchors
    ssd300 = ssd_anchor_generator(300, "voc")
    assert ssd300["min_sizes"] == [30, 60, 111, 162, 213, 264]
    assert ssd300["max_sizes"] == [60, 111, 162, 213, 264, 315]
    coco = ssd_anchor_generator(300, "coco")
    assert coco["min_sizes"] == [21, 45, 99, 153, 207, 261] and coco["max_sizes"] == [
        45,
        99,
        153,
        207,
        261,
        315,
    ]
    with pytest.raises(ValueError, match="288"):
        ssd_feature_sizes(160)


@pytest.mark.parametrize("method", METHODS)
def test_method_mapping(method: str) -> None:
    conv, norm = method_cfgs(method)
    _, required = method_cfgs(method, norm_required=True)
    if method in ("pws", "wn", "none"):
        assert conv["type"] == {"pws": "PWS", "wn": "WN", "none": "HeConv"}[method]
        assert conv["force_bias"] is True  # beta of eq. (12) even where mmdet asks bias=False
        assert norm is None and required == {"type": "NoNorm"}
    else:
        assert conv == {"type": "HeConv"}
        assert norm["type"] == {"bn": "BN", "gn": "GN", "in": "IN", "ln": "LN2d", "sn": "SN"}[method]
        assert required == norm
    if method == "pws":
        assert conv["gamma"] == 1e-3 and conv["gamma_mode"] == "var" and math.isclose(conv["gamma"], 1e-3)
