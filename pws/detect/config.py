"""From the Hydra config of a detection run to the mmengine config that mmengine's ``Runner`` runs.

:func:`detection_settings` turns the composed config (checked once, by ``pws.detect.app.DETECT.plan``) into
the run's effective settings (which LR, batch size, epochs, ...: explicit overrides first, then the scale,
then the schedule). :func:`build_config` loads
the model's file in ``configs/mmdet/`` -- mmdetection's own config plus what the paper changes, with the
run's normalization method (:mod:`pws.detect.models`) -- and sets only the run's values: data root, batch
size and workers (mmdet's datasets, pipelines and evaluators: VOC07 11-point mAP, COCO via pycocotools),
LR, momentum, weight decay (alpha's zero weight decay: :func:`pws.optim.mmengine_paramwise_cfg`), epochs and
LR steps, warm-up, gradient clipping, hook intervals; the run's own keys (work_dir, seed, resume) are
the engine's (:mod:`pws.engine.run_keys`). Loading the file imports mmdet.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pws.detect.models import MODEL_KEYS, check_options, model_config
from pws.engine.process import split_batch
from pws.engine.schedule import StepSchedule, step_schedule
from pws.engine.schema import SGD, Validator, sgd_values
from pws.nn.factory import NormMethod, as_method
from pws.optim import mmengine_paramwise_cfg

# mmdet's COCO detection datasets and metric (in the mmdet wheel's configs), for SSD (whose file is on VOC)
# on COCO.
COCO_DATASETS = "_base_/datasets/coco_detection.py"
# Figure 3's f-measure (pws.detect.fmeasure) beside mmdet's metric, after every epoch of every run.
FMEASURE = dict(type="DetectionFMeasure")


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
    sgd: SGD
    schedule: StepSchedule
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
    train_size: int | None = None  # data.train_size / test_size: the first N images of each split (None: all)
    test_size: int | None = None

    def as_record(self) -> dict[str, Any]:
        out = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.name not in NESTED}
        out.update(method=self.method.to_config(), **asdict(self.sgd),
                   **asdict(self.schedule))  # fmt: skip
        return out


NESTED = ("method", "sgd", "schedule")  # recorded flat: as_record


def detection_settings(v: Validator, seed: int | None) -> Settings | None:
    """The detection keys of the composed config, checked into ``v`` (every problem one line, the engine's
    format); None when any is invalid. Which value a setting takes (the explicit key, the scale's
    ``detect:`` section, the schedule) the group files say by interpolation."""
    model = v.string("model.name")
    options = {k: value for k, value in v.section("model").items() if k not in MODEL_KEYS}
    if model is not None:
        try:
            check_options(model, options)
        except ValueError as e:
            v.fail(f"model: {e}")
    data_format = v.string("data.format")
    if data_format is not None and data_format not in ("voc", "coco"):
        v.fail(f"data.format must be 'voc' or 'coco', got {data_format!r}")
    if model == "mask_rcnn_r50_fpn" and data_format == "voc":
        v.fail("mask_rcnn_r50_fpn needs instance masks: use a COCO data set (data=coco or synthetic_coco)")
    method = None
    try:
        method = as_method(v.section("norm"))
    except (ValueError, TypeError) as e:  # gamma < 0, unknown option, ... (the factory names what is allowed)
        v.fail(f"norm: {e}")
    sgd = sgd_values(v)
    schedule = step_schedule(v, "scale.detect.epochs")
    input_size = capped_input_size(v, model)
    scale, sched = "scale.detect", "schedule"
    settings = dict(
        model=model,
        data=v.string("data.name"),
        data_format=data_format,
        method=method,
        num_classes=v.integer("data.num_classes", minimum=1),
        input_size=input_size,
        batch_size=v.integer("data.batch_size", minimum=1),
        sgd=sgd,
        schedule=schedule,
        warmup_iters=v.integer(f"{sched}.warmup_iters", minimum=0),
        clip_grad_max_norm=v.number(f"{sched}.clip_grad_max_norm", above=0.0, optional=True),
        val_interval=v.integer(f"{sched}.val_interval", minimum=1),
        checkpoint_interval=v.integer(f"{sched}.checkpoint_interval", minimum=1),
        max_keep_ckpts=v.integer(f"{scale}.max_keep_ckpts", minimum=1, default=2),
        num_workers=v.integer("data.num_workers", minimum=0),
        test_score_thr=v.number("model.test_score_thr", minimum=0.0),
        fps_warmup_iters=v.integer(f"{scale}.fps_warmup_iters", minimum=0, default=50),
        log_interval=v.integer(f"{scale}.log_interval", minimum=1, default=50),
        seed=seed,
        model_options=options,
        train_size=v.integer("data.train_size", minimum=1, optional=True),
        test_size=v.integer("data.test_size", minimum=1, optional=True),
    )
    if v.errors:
        return None
    return Settings(**settings)


def capped_input_size(v: Validator, model: str | None) -> Any:
    """``model.input_size`` with the scale's ``detect.input_size_cap`` (one side, or a mapping from the
    model's name to one; an unlisted model is not capped) as its largest side: SSD's square side, or Mask
    R-CNN's keep-ratio scale shrunk to it."""
    input_size = v.get("model.input_size")
    key = "scale.detect.input_size_cap"
    caps = v.get(key)
    if isinstance(caps, Mapping):
        if caps.get(model) is None:
            return input_size
        key = f"{key}.{model}"
    cap = v.integer(key, minimum=32, optional=True)
    if cap is None:
        return input_size
    if isinstance(input_size, list):  # keep-ratio scales (Mask R-CNN)
        factor = min(1.0, cap / max(input_size))
        return [max(32, round(x * factor)) for x in input_size]
    return min(input_size, cap) if isinstance(input_size, int) else input_size


# --------------------------------------------------------------------------------------------- config


def build_config(
    settings: Settings,
    *,
    data_root: str | os.PathLike[str],
    world_size: int = 1,
) -> dict[str, Any]:
    """The mmengine config (a dict; ``mmengine.Config(dict)`` wraps it) of one detection experiment, in
    one pass: the model's file in ``configs/mmdet/`` (mmdet's config plus the paper's changes, with the
    run's model choices: :func:`pws.detect.models.model_config`) with the data (``settings.batch_size``
    split over ``world_size`` processes: :func:`pws.engine.process.split_batch`), schedule, optimizer and
    hook intervals. The run's keys are :func:`pws.engine.run_keys.add_run_keys`'s."""
    cfg = model_config(
        settings.model,
        settings.method,
        num_classes=settings.num_classes,
        data_format=settings.data_format,
        input_size=settings.input_size,
        score_thr=settings.test_score_thr,
        **settings.model_options,
    )
    _set_data(cfg, settings, data_root, split_batch(settings.batch_size, world_size))
    cfg["train_cfg"].update(max_epochs=settings.schedule.epochs, val_interval=settings.val_interval)
    # mmdet's schedules: its linear warm-up over iterations, then the run's LR steps at epochs
    warmup = next(s for s in cfg["param_scheduler"] if s["type"] == "LinearLR")
    warmup["end"] = settings.warmup_iters
    cfg["param_scheduler"] = ([warmup] if settings.warmup_iters > 0 else []) + [settings.schedule.scheduler()]
    cfg["optim_wrapper"]["optimizer"].update(settings.sgd.optimizer())
    cfg["optim_wrapper"].update(
        # PWS's alpha gets no weight decay (the paper); everything else the schedule's.
        paramwise_cfg=mmengine_paramwise_cfg(),
        clip_grad=None if settings.clip_grad_max_norm is None else dict(max_norm=settings.clip_grad_max_norm),
    )
    hooks = cfg["default_hooks"]
    hooks["logger"]["interval"] = settings.log_interval
    hooks["checkpoint"].update(interval=settings.checkpoint_interval, max_keep_ckpts=settings.max_keep_ckpts)
    return cfg  # the run's keys (work_dir, launcher, process group, randomness, resume, ...): the engine's


def _set_data(cfg: dict[str, Any], settings: Settings, data_root: str | os.PathLike[str],
              batch_size: int) -> None:  # fmt: skip
    """The run's data root, per-process ``batch_size`` and workers in the file's datasets, or, for a data
    format the file does not have (SSD on COCO), in mmdet's COCO detection datasets and metric; the file's
    pipelines."""
    root = str(data_root).rstrip("/") + "/"
    data = cfg
    if (cfg["val_dataloader"]["dataset"]["type"] == "VOCDataset") != (settings.data_format == "voc"):
        data = _mmdet_config(COCO_DATASETS)
    train = data["train_dataloader"]["dataset"]
    if train["type"] == "RepeatDataset":  # mmdet repeats the data; the paper's epochs are single passes
        train = train["dataset"]
    parts = train["datasets"] if train["type"] == "ConcatDataset" else [train]
    for dataset in parts:
        dataset.update(data_root=root, pipeline=copy.deepcopy(cfg["train_pipeline"]))
        if settings.train_size is not None:  # mmdet's `indices`: the first N (after filtering empty images)
            dataset["indices"] = -(-settings.train_size // len(parts))
    val = data["val_dataloader"]["dataset"]
    val.update(data_root=root, pipeline=copy.deepcopy(cfg["test_pipeline"]))
    if settings.test_size is not None:
        val["indices"] = settings.test_size
    classes = _dataset_classes(settings)
    if len(classes) > settings.num_classes:  # the first N classes only (the smoke scale's generated sets)
        for dataset in [*(train["datasets"] if train["type"] == "ConcatDataset" else [train]), val]:
            dataset["metainfo"] = dict(classes=classes[: settings.num_classes])
    evaluator = data["val_evaluator"]
    if "ann_file" in evaluator:  # CocoMetric reads the annotations itself
        evaluator["ann_file"] = root + val["ann_file"]
    workers = dict(num_workers=settings.num_workers, persistent_workers=settings.num_workers > 0)
    cfg["train_dataloader"].update(batch_size=batch_size, dataset=train, **workers)
    cfg["val_dataloader"].update(dataset=val, **workers)
    cfg.update(
        data_root=root,
        test_dataloader=copy.deepcopy(cfg["val_dataloader"]),
        val_evaluator=[evaluator, FMEASURE],
        test_evaluator=copy.deepcopy([evaluator, FMEASURE]),
    )


def _dataset_classes(settings: Settings) -> tuple[str, ...]:
    """The classes of mmdet's dataset for the run's data format (VOC's 20, COCO's 80)."""
    from mmdet.datasets import CocoDataset, VOCDataset

    return tuple((VOCDataset if settings.data_format == "voc" else CocoDataset).METAINFO["classes"])


def _mmdet_config(path: str) -> dict[str, Any]:
    """One of the configs the mmdet wheel ships (what ``mmdet::<path>`` names in a ``_base_``)."""
    from mmengine.config import Config
    from mmengine.utils import get_installed_path

    return Config.fromfile(str(Path(get_installed_path("mmdet")) / ".mim" / "configs" / path)).to_dict()


def data_root_path(path: str | os.PathLike[str], base: str | os.PathLike[str] | None = None) -> Path:
    """``path`` made absolute against ``base`` (the directory the command was started in)."""
    p = Path(os.path.expanduser(str(path)))
    return p if p.is_absolute() else Path(base or os.getcwd()) / p
