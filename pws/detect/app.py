"""``python -m pws.detect``: one detection run of the paper (Tables 1-3), composed by Hydra, run by mmengine.

    python -m pws.detect                                   # SSD320-VGG16 + PWS, smoke scale, generated VOC
    python -m pws.detect scale=full data=voc0712 norm=bn data.batch_size=8
    python -m pws.detect scale=full data=coco model=mask_rcnn_r50_fpn schedule=mask_rcnn_1x norm=pws \
        norm.gamma=1e-4
    torchrun --nproc_per_node 4 -m pws.detect scale=full data=voc0712    # several GPUs (DDP)

Hydra composes the run (groups ``model``, ``norm``, ``data``, ``optim``, ``schedule``, ``scale``; keys
``optim.lr``, ``norm.gamma``, ``data.batch_size``, ``seed``), :mod:`pws.detect.config` turns it into an
mmengine config and mmengine's ``Runner`` trains and evaluates (resume and checkpoints are mmengine's: the
same command again resumes from the run directory's last checkpoint; a run whose ``metrics.json`` says
finished or diverged is skipped unless ``force=true``). Under ``torchrun`` the Runner uses mmengine's
``pytorch`` launcher; ``data.batch_size`` is the total batch, split over the processes.

The run directory gets ``metrics.json`` (:mod:`pws.runs.record`): ``status`` (finished / diverged /
failed), VOC07-test ``mAP`` (%, 11-point) or COCO ``bbox_mAP``, ``bbox_mAP_50``, ``bbox_mAP_75`` (and
``segm_mAP`` for Mask R-CNN) in %, NaN when diverged; ``train_fps`` (images/s over steady-state training
iterations); the per-epoch history; settings, versions, git commit. wandb logs through
:class:`pws.runs.tracking.Tracker` (offline unless ``WANDB_MODE`` says otherwise).
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from pws.data.detection.check import AnnotationError
from pws.data.errors import DataMissingError
from pws.detect.config import Settings, build_config, data_root_path, resolve_settings
from pws.runs.record import Diverged, environment_info, is_done, read_metrics, write_metrics
from pws.runs.run_dir import register_resolvers

log = logging.getLogger("pws.detect")

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "configs")
VOC_METRICS = {"mAP": "pascal_voc/mAP"}
COCO_METRICS = {
    "bbox_mAP": "coco/bbox_mAP",
    "bbox_mAP_50": "coco/bbox_mAP_50",
    "bbox_mAP_75": "coco/bbox_mAP_75",
    "segm_mAP": "coco/segm_mAP",
}


register_resolvers()


class ConfigError(ValueError):
    """An invalid run configuration (reported before any work)."""


def metric_keys(settings: Settings) -> dict[str, str]:
    """metrics.json key -> mmdet metric name, for this run's data and model."""
    if settings.data_format == "voc":
        return dict(VOC_METRICS)
    keys = dict(COCO_METRICS)
    if settings.model != "mask_rcnn_r50_fpn":
        keys.pop("segm_mAP")
    return keys


def extract_metrics(settings: Settings, evaluated: dict[str, Any]) -> dict[str, float]:
    """Our metrics in % from mmdet's (fractions). A COCO evaluation without any detection returns nothing:
    its AP is 0 (no recall), recorded as 0.0."""
    out = {}
    for ours, theirs in metric_keys(settings).items():
        value = evaluated.get(theirs)
        out[ours] = 100.0 * float(value) if value is not None else 0.0
    return out


def world() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment (before any process group exists)."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


# ------------------------------------------------------------------------------------------------ data


def prepare_data(cfg: DictConfig, settings: Settings, base_dir: str) -> Path:
    """The data root handed to mmdet: generated for synthetic sets, checked for real ones; annotations
    validated (a malformed file is named in a ValueError, not a stack trace from inside mmdet)."""
    from pws.data.detection import check

    data = cfg.data
    root = data_root_path(data.root, base_dir)
    synthetic = str(data.name).startswith("synthetic")
    if synthetic:
        num_train, seed = int(data.num_train), int(data.get("seed", 0))
        if settings.data_format == "voc":
            from pws.data.detection import synthetic_voc

            num_test = int(data.num_test)
            folder = root / f"{data.name}-n{num_train}-t{num_test}-s{seed}"
            root = synthetic_voc.generate(folder, num_train=num_train, num_test=num_test, seed=seed)
        else:
            from pws.data.detection import synthetic_coco

            num_val = int(data.num_val)
            folder = root / f"{data.name}-n{num_train}-v{num_val}-s{seed}"
            root = synthetic_coco.generate(folder, num_train=num_train, num_val=num_val, seed=seed)
    if settings.data_format == "voc":
        root = check.require_voc(root)
        check.validate_voc(root)
    else:
        root = check.require_coco(root)
        for split in ("train2017", "val2017"):
            check.validate_coco(root / "annotations" / f"instances_{split}.json")
    return Path(root)


# ------------------------------------------------------------------------------------------------- run


def base_record(cfg: DictConfig, settings: Settings | None) -> dict[str, Any]:
    overrides: list[str] = []
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task)
    except (ImportError, ValueError):
        pass
    record: dict[str, Any] = {
        "task": "detect",
        "scale": cfg.scale.get("name"),
        "seed": int(cfg.get("seed", 0)),
        "table": cfg.get("table"),
        "row": cfg.get("row"),
        "cell": cfg.get("cell"),
        "method": cfg.norm.get("method"),
        "model": cfg.model.get("name"),
        "data": cfg.data.get("name"),
        "schedule": cfg.schedule.get("name"),
        "overrides": overrides,
        "config": OmegaConf.to_container(cfg, resolve=True),
        **environment_info(),
    }
    if settings is not None:
        record["settings"] = settings.as_record()
        record["gamma"] = settings.method.options.get("gamma")
        record["lr"] = settings.lr
        record["batch_size"] = settings.batch_size
    return record


def _nonfinite_parameters(runner: Any) -> bool:
    import torch

    model = getattr(runner, "model", None)
    if model is None:
        return False
    return any(not torch.isfinite(p).all() for p in model.parameters())


def run(cfg: DictConfig, run_dir: str | os.PathLike[str], base_dir: str | None = None) -> dict[str, Any]:
    """Train and evaluate one run in ``run_dir``; return (and write, on rank 0) its metrics record."""
    run_dir = Path(run_dir)
    rank, world_size = world()
    base_dir = base_dir or os.getcwd()
    if is_done(run_dir) and not cfg.get("force", False):
        record = read_metrics(run_dir) or {}
        log.info(
            "%s already %s (metrics.json); skipping (force=true reruns it)", run_dir, record.get("status")
        )
        return record

    start = time.time()
    force = bool(cfg.get("force", False))
    try:
        settings = resolve_settings(cfg)
    except ValueError as err:
        record = {**base_record(cfg, None), "status": "failed", "error": f"invalid configuration: {err}"}
        if rank == 0:
            write_metrics(run_dir, record)
        raise ConfigError(str(err)) from err
    record = base_record(cfg, settings)
    keys = metric_keys(settings)
    if settings.batch_size % world_size:
        err = f"data.batch_size={settings.batch_size} must be divisible by the {world_size} processes"
        record.update(status="failed", error=err)
        if rank == 0:
            write_metrics(run_dir, record)
        raise ConfigError(err)

    try:
        data_root = prepare_data(cfg, settings, base_dir)
    except (DataMissingError, ValueError) as err:
        record.update(status="failed", error=str(err))
        if rank == 0:
            write_metrics(run_dir, record)
        raise

    record.update(status="running", data_root=str(data_root))
    if rank == 0:
        write_metrics(run_dir, record)

    from mmengine.config import Config
    from mmengine.runner import Runner

    import pws.detect.registry  # noqa: F401  (registers the layers, backbone, head, hooks)
    from pws.detect.checkpoint import mmengine_checkpoints
    from pws.detect.hooks import DivergenceHook, RecordHook, TrainSpeedHook

    per_process = dict(vars(settings))
    per_process["batch_size"] = settings.batch_size // world_size
    mm_cfg = build_config(
        Settings(**per_process),
        data_root=data_root,
        work_dir=run_dir,
        launcher="pytorch" if world_size > 1 else "none",
        resume=not force,  # resume from the run directory's last checkpoint; force=true starts afresh
    )
    tracker = None
    if rank == 0:
        from pws.runs.tracking import Tracker

        table = cfg.get("table")
        tracker = Tracker(
            run_dir,
            config={**record["config"], "settings": record["settings"]},
            mode=cfg.get("wandb", {}).get("mode"),
            # project pws-<table> (pws-repro without one), group = the table row, name = the cell
            table=table,
            cell=cfg.get("cell"),
            group=cfg.get("row"),
            name=None if cfg.get("cell") else f"{settings.model}/{settings.data}/{settings.method.method}",
            tags=["detect", str(cfg.scale.get("name")), settings.model, settings.method.method],
        )
    speed = TrainSpeedHook(warmup_iters=settings.fps_warmup_iters)
    history = RecordHook(tracker=tracker, log_interval=settings.log_interval)
    runner = None
    try:
        runner = Runner.from_cfg(Config(mm_cfg))
        runner.register_hook(DivergenceHook(), priority="HIGHEST")
        runner.register_hook(speed, priority="VERY_HIGH")
        runner.register_hook(history, priority="LOW")
        with mmengine_checkpoints():
            runner.train()
        evaluated = dict(history.last_metrics)
        if not evaluated:  # resumed after the last epoch had already been trained: evaluate now
            with mmengine_checkpoints():
                evaluated = dict(runner.val() or {})
        record.update(status="finished", **extract_metrics(settings, evaluated))
        record["evaluated"] = {k: _float(v) for k, v in evaluated.items()}
    except Diverged as err:
        record.update(status="diverged", error=str(err), **{k: math.nan for k in keys})
    except Exception as err:
        if runner is not None and _nonfinite_parameters(runner):
            record.update(
                status="diverged", error=f"non-finite weights: {err}", **{k: math.nan for k in keys}
            )
        else:
            record.update(
                status="failed", error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc()
            )
            _finish(run_dir, rank, record, speed=speed, history=history, tracker=tracker, start=start)
            raise
    return _finish(run_dir, rank, record, speed=speed, history=history, tracker=tracker, start=start)


def _float(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _finish(
    run_dir: Path, rank: int, record: dict[str, Any], *, speed: Any, history: Any, tracker: Any, start: float
) -> dict[str, Any]:
    record.update(speed.summary())
    record["images_per_s"] = record["train_fps"]
    record["history"] = history.history
    record["wall_time_s"] = time.time() - start
    if rank == 0:
        write_metrics(run_dir, record)
        if tracker is not None:
            summary = {
                k: v for k, v in record.items() if isinstance(v, (int, float, str)) and k != "traceback"
            }
            tracker.finish(summary)
    return record


@hydra.main(config_path=CONFIG_DIR, config_name="detect", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd

    try:
        record = run(cfg, HydraConfig.get().runtime.output_dir, base_dir=get_original_cwd())
    except (ConfigError, DataMissingError, AnnotationError) as err:
        print(f"pws.detect: error: {err}", file=sys.stderr)
        sys.exit(2)
    status = record.get("status")
    shown = {
        k: record.get(k) for k in ("mAP", "bbox_mAP", "bbox_mAP_50", "bbox_mAP_75", "segm_mAP", "train_fps")
    }
    print(f"pws.detect: {status}: " + ", ".join(f"{k}={v:.2f}" for k, v in shown.items() if v is not None))
