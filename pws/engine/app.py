"""What an app tells the engine: how to validate its config, prepare its data, build its mmengine config
and name its metrics. ``pws.classify.app.CLASSIFY`` and ``pws.detect.app.DETECT`` are the two apps."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from omegaconf import DictConfig


class Plan(Protocol):
    """What the engine reads of an app's validated plan (the app adds its own fields)."""

    seed: int
    force: bool
    wandb_mode: str
    ema_decay: float | None  # the authors' weight average (None: off), evaluated instead of the weights
    ema_warmup: bool
    log_interval: int
    fps_warmup_iters: int
    fused_pws: bool  # train.fused_pws: pws.nn.fuse_standardization on the built model
    compile: str | None  # train.compile: torch.compile's mode for mmengine's Runner (None: eager)
    sync_bn: bool  # train.sync_bn: several processes normalize BN over the total batch
    total_batch: int  # data.batch_size: the total batch, split over the processes
    lr: float  # the LR (the paper's, whatever the number of processes)


class App(Protocol):
    """One task (classification, detection) run by :func:`pws.engine.lifecycle.execute`."""

    name: str  # "classify" or "detect": the primary Hydra config and the ``task`` of the record

    def plan(self, cfg: DictConfig, world_size: int) -> Plan:
        """Validate ``cfg``; raise :class:`~pws.engine.errors.ConfigError` naming every invalid value."""

    def base_record(self, plan: Plan, cfg: DictConfig) -> dict[str, Any]:
        """The record's fixed fields beyond the engine's (model, method, data, settings, ...)."""

    def prepare(self, plan: Plan, base_dir: Path) -> dict[str, Any]:
        """Make or check the data; raise :class:`~pws.data.errors.DataMissingError` naming what is missing.
        Returns what :meth:`mmengine_config` needs (the data root, ...)."""

    def mmengine_config(self, plan: Plan, prepared: dict[str, Any], world_size: int) -> dict[str, Any]:
        """The model, dataloaders, evaluators, optimizer and schedule as an mmengine config dict."""

    def metric_names(self, plan: Plan) -> list[str]:
        """The record's metric keys (``top1_error``, ``mAP``, ...), NaN when the run diverged."""

    def summarize(self, plan: Plan, evaluated: dict[str, float]) -> dict[str, float]:
        """mmengine's evaluation (``{"pascal_voc/mAP": 0.77}``) as the record's metrics in %."""
