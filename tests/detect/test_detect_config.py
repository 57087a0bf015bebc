"""The Hydra configs of the detection app and the mmengine configs built from them.

The app's validation (``checked_plan``) needs no mmdet; :func:`build_config` loads the model's file in
configs/mmdet/ (mmdet's shipped config plus the project's changes), so its tests need the stack.
"""

from __future__ import annotations

import math

import pytest
from detection_stack import require_detection_stack

from pws.detect.app import checked_plan
from pws.detect.config import build_config
from pws.detect.models import LAYER_NORM_CFG, ssd_anchor_generator, ssd_feature_sizes
from pws.engine.schedule import StepSchedule, shorten_schedule
from pws.nn.factory import METHODS
from pws.nn.methods import mmcv_cfgs

from .conftest import compose_detect

MODELS = ("ssd_vgg16", "ssd_r50", "mask_rcnn_r50_fpn")


@pytest.fixture
def stack() -> None:
    require_detection_stack()


def settings_of(overrides: list[str]):
    """The validated settings of ``python -m pws.detect <overrides>`` (the app's one validation)."""
    return checked_plan(compose_detect(overrides), 1).settings


def _build(overrides: list[str], data_root: str = "/data/x") -> tuple:
    settings = settings_of(overrides)
    return settings, build_config(settings, data_root=data_root)


def _leaves(dataset: dict) -> list[dict]:
    return dataset["datasets"] if dataset["type"] == "ConcatDataset" else [dataset]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("scale", ["smoke", "full"])
def test_every_model_composes_at_every_scale(stack, model: str, scale: str) -> None:
    data = "synthetic_coco" if model.startswith("mask") else "synthetic_voc"
    settings, config = _build([f"model={model}", f"data={data}", f"scale={scale}"], "/nonexistent")
    assert config["model"]["type"] == ("MaskRCNN" if model.startswith("mask") else "SingleStageDetector")
    assert config["custom_imports"]["imports"] == ["pws.detect.registry"]
    assert config["default_scope"] == "mmdet" and "work_dir" not in config
    # alpha's zero weight decay goes through paramwise_cfg
    assert config["optim_wrapper"]["paramwise_cfg"] == {"custom_keys": {".alpha": {"decay_mult": 0.0}}}
    # the run's data root, batch size and workers; the model file's pipelines; no RepeatDataset
    train = config["train_dataloader"]
    assert train["batch_size"] == settings.batch_size and train["dataset"]["type"] != "RepeatDataset"
    for loader, pipeline in ((train, "train_pipeline"), (config["val_dataloader"], "test_pipeline")):
        assert loader["num_workers"] == settings.num_workers
        assert loader["persistent_workers"] is (settings.num_workers > 0)
        for dataset in _leaves(loader["dataset"]):
            assert dataset["data_root"] == "/nonexistent/" and dataset["pipeline"] == config[pipeline]
    assert config["test_dataloader"] == config["val_dataloader"]
    assert config["train_cfg"]["max_epochs"] == settings.schedule.epochs
    assert config["default_hooks"]["checkpoint"]["max_keep_ckpts"] == settings.max_keep_ckpts


def test_full_scale_is_the_papers_voc_setting(stack) -> None:
    s, config = _build(["scale=full", "data=voc0712"], "/data/VOCdevkit")
    assert (s.model, s.method.method, s.method.options["gamma"]) == ("ssd_vgg16", "pws", 1e-3)
    assert (s.schedule.epochs, s.schedule.milestones, s.sgd.lr, s.sgd.momentum, s.sgd.weight_decay) == (
        240, [90, 170], 1e-2, 0.9, 5e-4)
    assert (s.batch_size, s.input_size, s.clip_grad_max_norm, s.warmup_iters) == (16, 320, None, 0)
    # VOC07+12 trainval -> VOC07 test (mmdet's ssd300_voc0712 datasets), the VOC2007 11-point AP
    train = config["train_dataloader"]
    assert train["batch_sampler"] is None and train["dataset"]["type"] == "ConcatDataset"
    assert [d["ann_file"] for d in train["dataset"]["datasets"]] == [
        "VOC2007/ImageSets/Main/trainval.txt",
        "VOC2012/ImageSets/Main/trainval.txt",
    ]
    assert config["val_dataloader"]["dataset"]["ann_file"] == "VOC2007/ImageSets/Main/test.txt"
    evaluator, fmeasure = config["val_evaluator"]
    assert fmeasure == {"type": "DetectionFMeasure"} and config["test_evaluator"] == config["val_evaluator"]
    assert (evaluator["type"], evaluator["metric"], evaluator["eval_mode"]) == (
        "VOCMetric",
        "mAP",
        "11points",
    )
    assert config["optim_wrapper"]["clip_grad"] is None
    optimizer = config["optim_wrapper"]["optimizer"]
    assert (optimizer["type"], optimizer["lr"], optimizer["momentum"], optimizer["weight_decay"]) == (
        "SGD",
        1e-2,
        0.9,
        5e-4,
    )
    (steps,) = config["param_scheduler"]  # no warm-up ("no tricks")
    assert (steps["type"], steps["end"], steps["milestones"], steps["gamma"]) == (
        "MultiStepLR",
        240,
        [90, 170],
        0.1,
    )
    # mmdet's SSD augmentation at 320; the anchors of the file (VOC at 320)
    resizes = [t for t in config["train_pipeline"] if t["type"] == "Resize"]
    assert [t["scale"] for t in resizes] == [(320, 320)]
    assert config["model"]["bbox_head"]["anchor_generator"]["min_sizes"] == [32, 64, 118, 172, 227, 281]
    assert config["model"]["test_cfg"]["score_thr"] == 0.02


@pytest.mark.parametrize(
    ("schedule", "epochs", "milestones", "batch", "lr", "wd"),
    [
        ("ssd_coco_1x", 80, [30, 50, 70], 16, 1e-2, 5e-4),
        ("ssd_coco_2x", 150, [60, 100, 140], 16, 1e-2, 5e-4),
        ("mask_rcnn_1x", 12, [8, 11], 4, 5e-3, 1e-4),
    ],
)
def test_coco_schedules(
    stack, schedule: str, epochs: int, milestones: list[int], batch: int, lr: float, wd: float
) -> None:
    model = "mask_rcnn_r50_fpn" if schedule.startswith("mask") else "ssd_vgg16"
    s, config = _build([f"model={model}", "data=coco", f"schedule={schedule}", "scale=full"], "/data/coco")
    assert (s.schedule.epochs, s.schedule.milestones, s.batch_size, s.sgd.lr, s.sgd.weight_decay) == (
        epochs, milestones, batch, lr, wd)
    evaluator, fmeasure = config["val_evaluator"]
    assert evaluator["type"] == "CocoMetric" and fmeasure["type"] == "DetectionFMeasure"
    assert evaluator["ann_file"] == "/data/coco/annotations/instances_val2017.json"
    assert evaluator["metric"] == (["bbox", "segm"] if model.startswith("mask") else "bbox")
    train = config["train_dataloader"]["dataset"]
    assert (train["type"], train["data_root"]) == ("CocoDataset", "/data/coco/")
    assert train["ann_file"] == "annotations/instances_train2017.json"
    if model.startswith("ssd"):  # SSD's file is on VOC: mmdet's COCO datasets, SSD's pipelines and anchors
        assert train["pipeline"] == config["train_pipeline"]
        assert [t["type"] for t in train["pipeline"]][2:4] == ["Expand", "MinIoURandomCrop"]
        assert config["model"]["bbox_head"]["anchor_generator"]["min_sizes"] == [22, 48, 105, 163, 220, 278]
        assert config["model"]["bbox_head"]["num_classes"] == 80
    else:  # mmdet's 500-iteration linear warm-up, then the steps
        warmup, steps = config["param_scheduler"]
        assert (warmup["type"], warmup["end"], warmup["start_factor"]) == ("LinearLR", 500, 0.001)
        assert (steps["end"], steps["milestones"]) == (12, [8, 11])


def test_smoke_mask_rcnn_is_capped_and_keeps_every_detection(stack) -> None:
    _, config = _build(["model=mask_rcnn_r50_fpn", "data=synthetic_coco", "schedule=mask_rcnn_1x"])
    for pipeline in ("train_pipeline", "test_pipeline"):
        assert [t["scale"] for t in config[pipeline] if t["type"] == "Resize"] == [(160, 96)]
    assert config["model"]["test_cfg"]["rcnn"]["score_thr"] == 0.0
    assert config["optim_wrapper"]["clip_grad"] == {"max_norm": 35.0}
    assert config["param_scheduler"][0]["end"] == 20  # the smoke scale's warm-up replaces mmdet's 500


@pytest.mark.parametrize(
    ("overrides", "head_norm"),
    [
        (["norm=pws"], "layer"),  # smoke: the unnormalized methods get the authors' head LayerNorm
        (["norm=wn"], "layer"),
        (["norm=none"], "layer"),
        (["norm=bn"], "none"),  # ... the normalized ones keep mmdet's head
        (["norm=gn"], "none"),
        (["norm=pws", "model.head_norm=none"], "none"),  # the explicit key wins
        (["norm=bn", "model.head_norm=layer"], "layer"),
        (["norm=pws", "scale=full"], "none"),  # the paper's head
        (["norm=pws", "model=ssd_r50"], "layer"),
    ],
)
def test_ssd_head_norm_per_scale_and_method(stack, overrides: list[str], head_norm: str) -> None:
    _, config = _build(overrides)
    assert config["model"]["bbox_head"]["prediction_norm"] == head_norm
    # from scratch, the input is standardized with the ImageNet pixel std at every scale (mmdet's VGG: std 1)
    assert config["model"]["data_preprocessor"]["std"] == [58.395, 57.12, 57.375]


@pytest.mark.parametrize(
    ("overrides", "fpn_norm"),
    [
        (["norm=pws"], LAYER_NORM_CFG),  # smoke: a LayerNorm in the FPN for the unnormalized methods
        (["norm=pws", "model.neck_heads=method"], LAYER_NORM_CFG),
        (["norm=bn"], None),  # the normalized methods keep mmdet's FPN
        (["norm=pws", "model.head_norm=none"], None),
        (["norm=pws", "scale=full", "data=coco"], None),  # the paper's FPN
    ],
)
def test_mask_rcnn_head_norm_per_scale_and_method(stack, overrides: list[str], fpn_norm) -> None:
    common = ["model=mask_rcnn_r50_fpn", "data=synthetic_coco", "schedule=mask_rcnn_1x"]
    _, config = _build([*common, *overrides])
    assert config["model"]["neck"].get("norm_cfg") == fpn_norm
    assert LAYER_NORM_CFG == {"type": "LN2d", "eps": 1e-5}  # the ln method's: GroupNorm of one group


SSD_TRAIN = ["LoadImageFromFile", "LoadAnnotations", "Expand", "MinIoURandomCrop", "Resize", "RandomFlip",
             "PhotoMetricDistortion", "PackDetInputs"]  # fmt: skip  (mmdet's SSD300 training pipeline)


@pytest.mark.parametrize(
    ("overrides", "left_out"),
    [
        (["scale=full"], []),  # the paper's: SSD's whole augmentation
        ([], ["Expand", "MinIoURandomCrop"]),  # smoke: no zoom-out and random crops of the large objects
        (["model=ssd_r50"], ["Expand", "MinIoURandomCrop"]),
        (["model.drop_transforms=[]"], []),  # the explicit key wins
        (["scale=full", "model.drop_transforms=[PhotoMetricDistortion]"], ["PhotoMetricDistortion"]),
    ],
)
def test_ssd_training_transforms_per_scale(stack, overrides: list[str], left_out: list[str]) -> None:
    _, config = _build(overrides)
    expected = [t for t in SSD_TRAIN if t not in left_out]
    assert [t["type"] for t in config["train_pipeline"]] == expected
    for dataset in _leaves(config["train_dataloader"]["dataset"]):
        assert [t["type"] for t in dataset["pipeline"]] == expected
    assert [t["type"] for t in config["test_pipeline"]][:2] == ["LoadImageFromFile", "Resize"]  # untouched


def test_a_misspelt_dropped_transform_is_an_error(stack) -> None:
    with pytest.raises(ValueError, match=r"\['Expnad'\] not in ssd_vgg16's training pipeline"):
        _build(["model.drop_transforms=[Expnad]"])
    with pytest.raises(ValueError, match="drop_transforms must be a list"):
        settings_of(["model.drop_transforms=Expand"])


def test_explicit_keys_override_scale_and_schedule() -> None:
    s = checked_plan(
        compose_detect(
            ["optim.lr=1e-3", "data.batch_size=8", "norm.gamma=1e-5", "seed=3", "optim.weight_decay=0"]
        )
    , 1).settings
    assert (s.sgd.lr, s.batch_size, s.method.options["gamma"], s.seed, s.sgd.weight_decay) == (
        1e-3, 8, 1e-5, 3, 0.0)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lr=0", "optim.lr"),
        ("optim.lr=-1", "optim.lr"),
        ("data.batch_size=0", "data.batch_size"),
        ("norm.gamma=-1", "gamma"),
        ("model.name=yolo", "unknown detection model"),
        ("+model.neck_heads=method", "unknown option"),
    ],
)
def test_invalid_values_fail_with_one_clear_message(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings_of([override])


def test_smoke_ssd_vgg16_input_is_capped_to_257_with_anchors_for_it(stack) -> None:
    settings, config = _build([])
    assert settings.input_size == 257
    for pipeline in ("train_pipeline", "test_pipeline"):
        assert [t["scale"] for t in config[pipeline] if t["type"] == "Resize"] == [(257, 257)]
    anchors = config["model"]["bbox_head"]["anchor_generator"]
    assert anchors["input_size"] == 257 and anchors["strides"] == [8, 15, 29, 51, 86, 257]
    assert settings_of(["model.input_size=300"]).input_size == 257  # a cap, not a value
    # unlisted in the mapping: the model's own size; the full scale has no cap
    assert settings_of(["model=ssd_r50", "data=synthetic_coco"]).input_size == 320
    assert settings_of(["scale=full", "data=voc0712"]).input_size == 320
    with pytest.raises(ValueError, match=r"scale.detect.input_size_cap.ssd_vgg16 must be an integer"):
        settings_of(["scale.detect.input_size_cap.ssd_vgg16=big"])


def test_mask_rcnn_needs_coco() -> None:
    with pytest.raises(ValueError, match="COCO"):
        settings_of(["model=mask_rcnn_r50_fpn", "data=synthetic_voc"])


def test_smoke_scale_shortens_the_schedule() -> None:
    s = checked_plan(
        compose_detect(["model=mask_rcnn_r50_fpn", "data=synthetic_coco", "schedule=mask_rcnn_1x"])
    , 1).settings
    assert s.schedule == StepSchedule(4, [3], 0.1) and s.warmup_iters == 20  # 12 epochs, steps 8/11
    assert s.input_size == [160, 96] and s.test_score_thr == 0.0
    assert s.sgd.lr == 1e-2  # the smoke scale's LR, not mask_rcnn_1x's 5e-3
    assert shorten_schedule(240, [90, 170], 240) == (240, [90, 170])
    assert shorten_schedule(240, [90, 170], 24) == (24, [9, 17])
    # two steps that land on one epoch merge: the LR drops once (x0.1), never x0.01 at once
    assert shorten_schedule(240, [160, 200], 2) == (2, [1])


def test_ssd_anchor_rule() -> None:
    assert ssd_feature_sizes(320) == [40, 20, 10, 5, 3, 1]
    assert ssd_feature_sizes(300) == [38, 19, 10, 5, 3, 1]
    voc = ssd_anchor_generator(320, "voc")
    assert voc["min_sizes"] == [32, 64, 118, 172, 227, 281]
    assert voc["max_sizes"] == [64, 118, 172, 227, 281, 336]
    assert voc["strides"] == [8, 16, 32, 64, 107, 320]
    # the same rule gives mmdet's hard-coded SSD300 VOC and COCO anchors
    ssd300 = ssd_anchor_generator(300, "voc")
    assert ssd300["min_sizes"] == [30, 60, 111, 162, 213, 264]
    assert ssd300["max_sizes"] == [60, 111, 162, 213, 264, 315]
    coco = ssd_anchor_generator(300, "coco")
    assert coco["min_sizes"] == [21, 45, 99, 153, 207, 261]
    assert coco["max_sizes"] == [45, 99, 153, 207, 261, 315]
    assert ssd_feature_sizes(257) == [33, 17, 9, 5, 3, 1]  # the smallest input with six maps
    with pytest.raises(ValueError, match="at least 257 pixels"):
        ssd_feature_sizes(256)


@pytest.mark.parametrize("method", METHODS)
def test_method_mapping(method: str) -> None:
    conv, norm = mmcv_cfgs(method)
    _, required = mmcv_cfgs(method, norm_required=True)
    if method in ("pws", "wn", "none"):
        assert conv["type"] == {"pws": "PWS", "wn": "WN", "none": "HeConv"}[method]
        assert conv["force_bias"] is True  # beta of eq. (12) even where mmdet asks bias=False
        assert norm is None and required == {"type": "NoNorm"}
    else:
        assert conv == {"type": "HeConv"}
        assert norm["type"] == {"bn": "BN", "gn": "GN2d", "in": "IN2d", "ln": "LN2d", "sn": "SN"}[method]
        assert required == norm
    if method == "pws":
        assert conv["gamma"] == 1e-3 and conv["gamma_mode"] == "var" and math.isclose(conv["gamma"], 1e-3)
