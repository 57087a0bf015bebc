"""From the Hydra config of a detection run to the mmengine config that mmengine's ``Runner`` runs.

:func:`resolve_settings` turns the composed Hydra node into the run's effective settings (which LR, batch
size, epochs, ...: explicit overrides first, then the scale, then the schedule). :func:`build_config` loads
the model's file in ``configs/mmdet/`` -- mmdetection's own config plus what the paper changes, with the
run's normalization method (:mod:`pws.detect.models`) -- and sets only the run's values: data root, batch
size and workers (mmdet's datasets, pipelines and evaluators: VOC07 11-point mAP, COCO via pycocotools),
LR, momentum, weight decay (alpha's zero weight decay: :func:`pws.optim.mmengine_paramwise_cfg`), epochs and
LR steps, warm-up, gradient clipping, hook intervals, work_dir, seed. Loading the file imports mmdet.
"""

from __future__ import annotations

import copy
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pws.detect.models import check_options, model_config
from pws.engine.schedule import shorten_schedule
from pws.nn.factory import NormMethod, as_method
from pws.optim import mmengine_paramwise_cfg

# mmdet's COCO detection datasets and metric (in the mmdet wheel's configs), for SSD (whose file is on VOC)
# on COCO.
COCO_DATASETS = "_base_/datasets/coco_detection.py"
MODEL_KEYS = ("name", "input_size", "test_score_thr", "description")  # the rest: model_config's options


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
        out = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.name != "method"}
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


def resolve_settings(cfg: Any) -> Settings:
    """Effective settings from the Hydra config: explicit keys > scale ``detect`` section > schedule.

    Raises ValueError (one message naming the key) for invalid values, before any work.
    """
    model = _get(cfg.model, "name")
    model_cfg = _plain(cfg.model)
    options = {k: v for k, v in model_cfg.items() if k not in MODEL_KEYS}
    check_options(model, options)
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
    _, milestones = shorten_schedule(schedule_epochs, list(_get(schedule, "milestones", [])), epochs)

    batch_size = _get(data, "batch_size", _get(scale, "batch_size", _get(schedule, "batch_size")))
    lr = _get(optim, "lr", _get(schedule, "lr"))
    weight_decay = _get(optim, "weight_decay", _get(schedule, "weight_decay"))
    momentum = _get(optim, "momentum", _get(schedule, "momentum", 0.9))
    clip = _get(scale, "clip_grad_max_norm", _get(schedule, "clip_grad_max_norm"))

    input_size = model_cfg.get("input_size")
    cap = _get(scale, "input_size_cap")
    if cap is not None and isinstance(input_size, (list, tuple)):  # keep-ratio scales (Mask R-CNN)
        factor = min(1.0, int(cap) / max(input_size))
        input_size = [max(32, round(v * factor)) for v in input_size]
    score_thr = _get(scale, "test_score_thr", model_cfg.get("test_score_thr"))
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


# --------------------------------------------------------------------------------------------- config


def build_config(
    settings: Settings,
    *,
    data_root: str | os.PathLike[str],
    work_dir: str | os.PathLike[str],
    launcher: str = "none",
    resume: bool = True,
) -> dict[str, Any]:
    """The mmengine config (a dict; ``mmengine.Config(dict)`` wraps it) of one detection run: the model's
    file in ``configs/mmdet/`` (mmdet's config plus the paper's changes, with the run's model choices:
    :func:`pws.detect.models.model_config`) with the run's data, schedule, optimizer, hooks and work_dir."""
    cfg = model_config(
        settings.model,
        settings.method,
        num_classes=settings.num_classes,
        data_format=settings.data_format,
        input_size=settings.input_size,
        score_thr=settings.test_score_thr,
        **settings.model_options,
    )
    _set_data(cfg, settings, data_root)
    cfg["train_cfg"].update(max_epochs=settings.epochs, val_interval=settings.val_interval)
    # mmdet's schedules: a linear warm-up over iterations, then LR steps at epochs
    schedulers = {s["type"]: s for s in cfg["param_scheduler"]}
    warmup, steps = schedulers["LinearLR"], schedulers["MultiStepLR"]
    warmup["end"] = settings.warmup_iters
    steps.update(end=settings.epochs, milestones=list(settings.milestones), gamma=settings.lr_gamma)
    cfg["param_scheduler"] = ([warmup] if settings.warmup_iters > 0 else []) + [steps]
    cfg["optim_wrapper"]["optimizer"].update(
        lr=settings.lr,
        momentum=settings.momentum,
        weight_decay=settings.weight_decay,
        nesterov=settings.nesterov,
    )
    cfg["optim_wrapper"].update(
        # PWS's alpha gets no weight decay (the paper); everything else the schedule's.
        paramwise_cfg=mmengine_paramwise_cfg(),
        clip_grad=None if settings.clip_grad_max_norm is None else dict(max_norm=settings.clip_grad_max_norm),
    )
    hooks = cfg["default_hooks"]
    hooks["logger"]["interval"] = settings.log_interval
    hooks["checkpoint"].update(
        interval=settings.checkpoint_interval, max_keep_ckpts=settings.max_keep_ckpts, save_last=True
    )
    cfg["env_cfg"]["dist_cfg"]["backend"] = "nccl" if _cuda_available() else "gloo"
    cfg.update(
        work_dir=str(work_dir),
        launcher=launcher,
        randomness=dict(seed=settings.seed, deterministic=False),
        resume=resume,
        load_from=None,
    )
    return cfg


def _set_data(cfg: dict[str, Any], settings: Settings, data_root: str | os.PathLike[str]) -> None:
    """The run's data root, batch size and workers in the file's datasets, or, for a data format the file
    does not have (SSD on COCO), in mmdet's COCO detection datasets and metric; the file's pipelines."""
    root = str(data_root).rstrip("/") + "/"
    data = cfg
    if (cfg["val_dataloader"]["dataset"]["type"] == "VOCDataset") != (settings.data_format == "voc"):
        data = _mmdet_config(COCO_DATASETS)
    train = data["train_dataloader"]["dataset"]
    if train["type"] == "RepeatDataset":  # mmdet repeats the data; the paper's epochs are single passes
        train = train["dataset"]
    for dataset in train["datasets"] if train["type"] == "ConcatDataset" else [train]:
        dataset.update(data_root=root, pipeline=copy.deepcopy(cfg["train_pipeline"]))
    val = data["val_dataloader"]["dataset"]
    val.update(data_root=root, pipeline=copy.deepcopy(cfg["test_pipeline"]))
    evaluator = data["val_evaluator"]
    if "ann_file" in evaluator:  # CocoMetric reads the annotations itself
        evaluator["ann_file"] = root + val["ann_file"]
    workers = dict(num_workers=settings.num_workers, persistent_workers=settings.num_workers > 0)
    cfg["train_dataloader"].update(batch_size=settings.batch_size, dataset=train, **workers)
    cfg["val_dataloader"].update(dataset=val, **workers)
    cfg.update(
        data_root=root,
        test_dataloader=copy.deepcopy(cfg["val_dataloader"]),
        val_evaluator=evaluator,
        test_evaluator=copy.deepcopy(evaluator),
    )


def _mmdet_config(path: str) -> dict[str, Any]:
    """One of the configs the mmdet wheel ships (what ``mmdet::<path>`` names in a ``_base_``)."""
    from mmengine.config import Config
    from mmengine.utils import get_installed_path

    return Config.fromfile(str(Path(get_installed_path("mmdet")) / ".mim" / "configs" / path)).to_dict()


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
