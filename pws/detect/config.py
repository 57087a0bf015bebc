"""From the Hydra config of a detection run to the mmengine ``Config`` that mmengine's ``Runner`` runs.

:func:`resolve_settings` turns the composed Hydra node into the run's effective settings (which LR, batch
size, epochs, ...: explicit overrides first, then the scale, then the schedule) and :func:`build_config`
writes the mmengine config: model (:mod:`pws.detect.models`), datasets and pipelines (mmdet's SSD and Mask
R-CNN pipelines), evaluators (VOC07 11-point mAP, COCO via pycocotools), optimizer with alpha's zero weight
decay (:func:`pws.optim.mmengine_paramwise_cfg`), LR schedule, hooks, checkpoints. Nothing here imports
mmdet: the config is plain data, loadable by any mmdet tool through ``custom_imports``.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pws.detect.models import BUILDERS, MEAN_RGB
from pws.nn.factory import NormMethod, as_method
from pws.optim import mmengine_paramwise_cfg

REGISTRY_MODULE = "pws.detect.registry"
VOC_YEARS_TRAIN = ("VOC2007", "VOC2012")


@dataclass
class Settings:
    """The effective settings of one detection run (recorded in metrics.json)."""

    model: str
    data: str
    data_format: str  # voc | coco
    method: NormMethod
    num_classes: int
    input_size: Any  # int (SSD: square side) or [w, h] (Mask R-CNN: keep-ratio scale)
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    nesterov: bool
    epochs: int
    milestones: list[int]
    lr_gamma: float
    warmup_iters: int
    clip_grad_max_norm: float | None
    val_interval: int
    checkpoint_interval: int
    max_keep_ckpts: int
    num_workers: int
    test_score_thr: float
    fps_warmup_iters: int
    log_interval: int
    seed: int
    model_options: dict[str, Any] = field(default_factory=dict)

    def as_record(self) -> dict[str, Any]:
        out = asdict(self)
        out["method"] = {"method": self.method.method, **self.method.options}
        return out


def _get(node: Any, key: str, default: Any = None) -> Any:
    if node is None:
        return default
    value = node.get(key, default) if isinstance(node, Mapping) else getattr(node, key, default)
    return default if value is None else value


def _plain(node: Any) -> Any:
    """An OmegaConf node (or anything) as plain Python containers."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(node, (DictConfig, ListConfig)):
            return OmegaConf.to_container(node, resolve=True)
    except ImportError:  # pragma: no cover - hydra is a dependency
        pass
    return node


def _positive(name: str, value: Any, kind: type = float, allow_zero: bool = False) -> Any:
    try:
        value = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a {kind.__name__}, got {value!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return value


def shorten_milestones(milestones: list[int], epochs: int, schedule_epochs: int) -> list[int]:
    """The schedule's LR steps scaled to ``epochs`` (smoke runs keep the schedule's shape)."""
    if epochs == schedule_epochs:
        return list(milestones)
    scaled = [max(1, round(m * epochs / schedule_epochs)) for m in milestones]
    return [m for m in scaled if m < epochs]


def resolve_settings(cfg: Any) -> Settings:
    """Effective settings from the Hydra config: explicit keys > scale ``detect`` section > schedule.

    Raises ValueError (one message naming the key) for invalid values, before any work.
    """
    model = _get(cfg.model, "name")
    if model not in BUILDERS:
        raise ValueError(f"unknown detection model {model!r}; choose one of {', '.join(BUILDERS)}")
    data = cfg.data
    data_format = _get(data, "format")
    if data_format not in ("voc", "coco"):
        raise ValueError(f"data.format must be 'voc' or 'coco', got {data_format!r}")
    if model == "mask_rcnn_r50_fpn" and data_format != "coco":
        raise ValueError(
            "mask_rcnn_r50_fpn needs instance masks: use a COCO data set (data=coco or synthetic_coco)"
        )
    method = as_method(_plain(cfg.norm))
    schedule = cfg.schedule
    scale = _get(cfg.scale, "detect", {})
    optim = cfg.optim

    schedule_epochs = int(_get(schedule, "epochs"))
    epochs = int(_get(scale, "epochs", schedule_epochs))
    epochs = _positive("epochs", epochs, int)
    milestones = shorten_milestones(list(_get(schedule, "milestones", [])), epochs, schedule_epochs)

    batch_size = _get(data, "batch_size", _get(scale, "batch_size", _get(schedule, "batch_size")))
    lr = _get(optim, "lr", _get(schedule, "lr"))
    weight_decay = _get(optim, "weight_decay", _get(schedule, "weight_decay"))
    momentum = _get(optim, "momentum", _get(schedule, "momentum", 0.9))
    clip = _get(scale, "clip_grad_max_norm", _get(schedule, "clip_grad_max_norm"))

    model_cfg = _plain(cfg.model)
    input_size = model_cfg.get("input_size")
    cap = _get(scale, "input_size_cap")
    if cap is not None and isinstance(input_size, (list, tuple)):  # keep-ratio scales (Mask R-CNN)
        factor = min(1.0, int(cap) / max(input_size))
        input_size = [max(32, round(v * factor)) for v in input_size]
    score_thr = _get(scale, "test_score_thr", model_cfg.get("test_score_thr"))
    options = {
        k: v for k, v in model_cfg.items() if k not in ("name", "input_size", "test_score_thr", "description")
    }
    return Settings(
        model=model,
        data=str(_get(data, "name")),
        data_format=data_format,
        method=method,
        num_classes=int(_get(data, "num_classes")),
        input_size=input_size,
        batch_size=_positive("data.batch_size", batch_size, int),
        lr=_positive("optim.lr", lr),
        momentum=_positive("optim.momentum", momentum, allow_zero=True),
        weight_decay=_positive("optim.weight_decay", weight_decay, allow_zero=True),
        nesterov=bool(_get(optim, "nesterov", False)),
        epochs=epochs,
        milestones=milestones,
        lr_gamma=float(_get(schedule, "lr_gamma", 0.1)),
        warmup_iters=min(
            _positive("schedule.warmup_iters", _get(schedule, "warmup_iters", 0), int, True),
            int(_get(scale, "warmup_iters_cap", sys.maxsize)),
        ),
        clip_grad_max_norm=None if clip is None else _positive("clip_grad_max_norm", clip),
        val_interval=_positive(
            "val_interval", _get(scale, "val_interval", _get(schedule, "val_interval", 1)), int
        ),
        checkpoint_interval=_positive(
            "checkpoint_interval",
            _get(scale, "checkpoint_interval", _get(schedule, "checkpoint_interval", 1)),
            int,
        ),
        max_keep_ckpts=int(_get(scale, "max_keep_ckpts", 2)),
        num_workers=_positive(
            "num_workers", _get(data, "num_workers", _get(scale, "num_workers", 2)), int, True
        ),
        test_score_thr=_positive("test_score_thr", score_thr, allow_zero=True),
        fps_warmup_iters=_positive("fps_warmup_iters", _get(scale, "fps_warmup_iters", 50), int, True),
        log_interval=_positive("log_interval", _get(scale, "log_interval", 50), int),
        seed=int(_get(cfg, "seed", 0)),
        model_options=options,
    )


# ------------------------------------------------------------------------------------------ pipelines


def ssd_pipelines(input_size: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """mmdet's SSD augmentation (ssd300_coco.py) at ``input_size``: expand (zoom out up to 4x), min-IoU
    random crop, resize to a square, flip, photometric distortion; test: resize only."""
    train = [
        dict(type="LoadImageFromFile"),
        dict(type="LoadAnnotations", with_bbox=True),
        dict(type="Expand", mean=MEAN_RGB, to_rgb=True, ratio_range=(1, 4)),
        dict(type="MinIoURandomCrop", min_ious=(0.1, 0.3, 0.5, 0.7, 0.9), min_crop_size=0.3),
        dict(type="Resize", scale=(input_size, input_size), keep_ratio=False),
        dict(type="RandomFlip", prob=0.5),
        dict(
            type="PhotoMetricDistortion",
            brightness_delta=32,
            contrast_range=(0.5, 1.5),
            saturation_range=(0.5, 1.5),
            hue_delta=18,
        ),
        dict(type="PackDetInputs"),
    ]
    test = [
        dict(type="LoadImageFromFile"),
        dict(type="Resize", scale=(input_size, input_size), keep_ratio=False),
        dict(type="LoadAnnotations", with_bbox=True),
        dict(
            type="PackDetInputs", meta_keys=("img_id", "img_path", "ori_shape", "img_shape", "scale_factor")
        ),
    ]
    return train, test


def mask_rcnn_pipelines(
    scale: list[int] | tuple[int, int],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """mmdet's Mask R-CNN pipeline (coco_instance.py): keep-ratio resize to ``scale``, flip."""
    scale = tuple(int(v) for v in scale)
    train = [
        dict(type="LoadImageFromFile"),
        dict(type="LoadAnnotations", with_bbox=True, with_mask=True),
        dict(type="Resize", scale=scale, keep_ratio=True),
        dict(type="RandomFlip", prob=0.5),
        dict(type="PackDetInputs"),
    ]
    test = [
        dict(type="LoadImageFromFile"),
        dict(type="Resize", scale=scale, keep_ratio=True),
        dict(type="LoadAnnotations", with_bbox=True, with_mask=True),
        dict(
            type="PackDetInputs", meta_keys=("img_id", "img_path", "ori_shape", "img_shape", "scale_factor")
        ),
    ]
    return train, test


# ------------------------------------------------------------------------------------------- datasets


def voc_datasets(
    devkit: str | os.PathLike[str],
    train_pipeline: list[dict[str, Any]],
    test_pipeline: list[dict[str, Any]],
    years: tuple[str, ...] = VOC_YEARS_TRAIN,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """VOC07+12 trainval for training, VOC07 test for evaluation; the VOC07 11-point mAP."""
    root = str(devkit).rstrip("/") + "/"
    train_sets = [
        dict(
            type="VOCDataset",
            data_root=root,
            ann_file=f"{year}/ImageSets/Main/trainval.txt",
            data_prefix=dict(sub_data_root=f"{year}/"),
            filter_cfg=dict(filter_empty_gt=True, min_size=32, bbox_min_size=32),
            pipeline=train_pipeline,
        )
        for year in years
    ]
    train = (
        dict(type="ConcatDataset", ignore_keys=["dataset_type"], datasets=train_sets)
        if len(train_sets) > 1
        else train_sets[0]
    )
    test = dict(
        type="VOCDataset",
        data_root=root,
        ann_file="VOC2007/ImageSets/Main/test.txt",
        data_prefix=dict(sub_data_root="VOC2007/"),
        test_mode=True,
        pipeline=test_pipeline,
    )
    # The paper's VOC07 numbers: the VOC2007 devkit's 11-point interpolated AP at IoU 0.5 (SSD's protocol;
    # the authors' evaluation code averages the max precision at recall 0, 0.1, ..., 1).
    evaluator = dict(type="VOCMetric", metric="mAP", eval_mode="11points", iou_thrs=0.5)
    return train, test, evaluator


def coco_datasets(
    root: str | os.PathLike[str],
    train_pipeline: list[dict[str, Any]],
    test_pipeline: list[dict[str, Any]],
    with_mask: bool,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """COCO 2017 train -> val; mmdet's CocoMetric (pycocotools) for boxes (and masks)."""
    root = str(root).rstrip("/") + "/"
    train = dict(
        type="CocoDataset",
        data_root=root,
        ann_file="annotations/instances_train2017.json",
        data_prefix=dict(img="train2017/"),
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline,
    )
    test = dict(
        type="CocoDataset",
        data_root=root,
        ann_file="annotations/instances_val2017.json",
        data_prefix=dict(img="val2017/"),
        test_mode=True,
        pipeline=test_pipeline,
    )
    evaluator = dict(
        type="CocoMetric",
        ann_file=root + "annotations/instances_val2017.json",
        metric=["bbox", "segm"] if with_mask else ["bbox"],
        format_only=False,
    )
    return train, test, evaluator


# --------------------------------------------------------------------------------------------- config


def build_model(settings: Settings) -> dict[str, Any]:
    """The mmdet model config of the run."""
    opts = dict(settings.model_options)
    if settings.model == "mask_rcnn_r50_fpn":
        return BUILDERS["mask_rcnn_r50_fpn"](
            settings.method,
            num_classes=settings.num_classes,
            neck_heads=opts.get("neck_heads", "plain"),
            neck_heads_pws=opts.get("neck_heads_pws"),
            backbone_checkpoint=opts.get("backbone_checkpoint"),
            frozen_stages=opts.get("frozen_stages"),
            norm_eval=opts.get("norm_eval"),
            score_thr=settings.test_score_thr,
        )
    kwargs: dict[str, Any] = dict(
        num_classes=settings.num_classes,
        input_size=int(settings.input_size),
        anchors=settings.data_format,
        score_thr=settings.test_score_thr,
        backbone_checkpoint=opts.get("backbone_checkpoint"),
    )
    if settings.model == "ssd_vgg16" and "l2_norm_scale" in opts:
        kwargs["l2_norm_scale"] = opts["l2_norm_scale"]
    return BUILDERS[settings.model](settings.method, **kwargs)


def build_config(
    settings: Settings,
    *,
    data_root: str | os.PathLike[str],
    work_dir: str | os.PathLike[str],
    launcher: str = "none",
    resume: bool = True,
) -> dict[str, Any]:
    """The mmengine config (a dict; ``mmengine.Config(dict)`` wraps it) of one detection run."""
    if settings.model.startswith("ssd"):
        train_pipe, test_pipe = ssd_pipelines(int(settings.input_size))
    else:
        train_pipe, test_pipe = mask_rcnn_pipelines(settings.input_size)
    if settings.data_format == "voc":
        train_set, test_set, evaluator = voc_datasets(data_root, train_pipe, test_pipe)
    else:
        train_set, test_set, evaluator = coco_datasets(
            data_root, train_pipe, test_pipe, with_mask=settings.model == "mask_rcnn_r50_fpn"
        )
    workers = settings.num_workers
    loader_common = dict(num_workers=workers, persistent_workers=workers > 0)
    train_loader = dict(
        batch_size=settings.batch_size,
        sampler=dict(type="DefaultSampler", shuffle=True),
        batch_sampler=dict(type="AspectRatioBatchSampler") if settings.model == "mask_rcnn_r50_fpn" else None,
        dataset=train_set,
        **loader_common,
    )
    test_loader = dict(
        batch_size=1 if settings.model == "mask_rcnn_r50_fpn" else max(1, min(8, settings.batch_size)),
        drop_last=False,
        sampler=dict(type="DefaultSampler", shuffle=False),
        dataset=test_set,
        **loader_common,
    )
    schedulers: list[dict[str, Any]] = []
    if settings.warmup_iters > 0:
        schedulers.append(
            dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=settings.warmup_iters)
        )
    schedulers.append(
        dict(
            type="MultiStepLR",
            begin=0,
            end=settings.epochs,
            by_epoch=True,
            milestones=list(settings.milestones),
            gamma=settings.lr_gamma,
        )
    )
    optim_wrapper = dict(
        type="OptimWrapper",
        optimizer=dict(
            type="SGD",
            lr=settings.lr,
            momentum=settings.momentum,
            weight_decay=settings.weight_decay,
            nesterov=settings.nesterov,
        ),
        # PWS's alpha gets no weight decay (the paper); everything else the schedule's.
        paramwise_cfg=mmengine_paramwise_cfg(),
        clip_grad=None if settings.clip_grad_max_norm is None else dict(max_norm=settings.clip_grad_max_norm),
    )
    return dict(
        default_scope="mmdet",
        custom_imports=dict(imports=[REGISTRY_MODULE], allow_failed_imports=False),
        work_dir=str(work_dir),
        model=build_model(settings),
        train_dataloader=train_loader,
        val_dataloader=test_loader,
        test_dataloader=test_loader,
        val_evaluator=evaluator,
        test_evaluator=evaluator,
        train_cfg=dict(
            type="EpochBasedTrainLoop", max_epochs=settings.epochs, val_interval=settings.val_interval
        ),
        val_cfg=dict(type="ValLoop"),
        test_cfg=dict(type="TestLoop"),
        optim_wrapper=optim_wrapper,
        param_scheduler=schedulers,
        default_hooks=dict(
            timer=dict(type="IterTimerHook"),
            logger=dict(type="LoggerHook", interval=settings.log_interval),
            param_scheduler=dict(type="ParamSchedulerHook"),
            checkpoint=dict(
                type="CheckpointHook",
                interval=settings.checkpoint_interval,
                max_keep_ckpts=settings.max_keep_ckpts,
                save_last=True,
            ),
            sampler_seed=dict(type="DistSamplerSeedHook"),
        ),
        env_cfg=dict(
            cudnn_benchmark=False,
            mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
            dist_cfg=dict(backend="nccl" if _cuda_available() else "gloo"),
        ),
        vis_backends=[dict(type="LocalVisBackend")],
        visualizer=dict(
            type="DetLocalVisualizer", vis_backends=[dict(type="LocalVisBackend")], name="visualizer"
        ),
        log_processor=dict(type="LogProcessor", window_size=50, by_epoch=True),
        log_level="INFO",
        launcher=launcher,
        randomness=dict(seed=settings.seed, deterministic=False),
        resume=resume,
        load_from=None,
    )


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return False


def data_root_path(path: str | os.PathLike[str], base: str | os.PathLike[str] | None = None) -> Path:
    """``path`` made absolute against ``base`` (the directory the command was started in)."""
    p = Path(os.path.expanduser(str(path)))
    return p if p.is_absolute() else Path(base or os.getcwd()) / p
