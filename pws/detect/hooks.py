"""mmengine hooks of every detection run: divergence, training speed, and the run's history.

* :class:`DivergenceHook` stops training with :class:`pws.runs.record.Diverged` as soon as the training loss
  is not finite (the run then ends with status ``diverged`` and NaN metrics, as the paper's tables print);
* :class:`TrainSpeedHook` measures ``train_fps``: images per second over the steady-state training
  iterations (after ``warmup_iters`` iterations of this process), timing each iteration's forward, backward
  and optimizer step (data loading excluded) with the GPU synchronized before each clock reading. Images are
  counted over all ranks. This is the measure of Table 1's speed column (images trained per second at
  batch 8);
* :class:`RecordHook` keeps the per-epoch train loss and validation metrics (and logs them to wandb through
  a :class:`pws.runs.tracking.Tracker`).

All three are registered in mmengine's ``HOOKS`` registry (usable from a config's ``custom_hooks``); the app
registers them as objects.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

import torch
from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from pws.runs.record import Diverged


def _loss_value(outputs: Any) -> float | None:
    if isinstance(outputs, dict) and "loss" in outputs:
        loss = outputs["loss"]
        return float(loss.detach().float().mean()) if torch.is_tensor(loss) else float(loss)
    return None


@HOOKS.register_module(force=True)
class DivergenceHook(Hook):
    """Raise :class:`Diverged` after the first training iteration whose total loss is NaN or infinite."""

    priority = "HIGHEST"

    def __init__(self) -> None:
        self.diverged_at: int | None = None

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        loss = _loss_value(outputs)
        if loss is not None and not math.isfinite(loss):
            self.diverged_at = runner.iter + 1
            raise Diverged(
                f"non-finite training loss {loss} at iteration {runner.iter + 1} (epoch {runner.epoch + 1})"
            )


def _synchronize() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


@HOOKS.register_module(force=True)
class TrainSpeedHook(Hook):
    """Images per second of training iterations after ``warmup_iters`` warm-up iterations."""

    priority = "VERY_HIGH"

    def __init__(self, warmup_iters: int = 50) -> None:
        if warmup_iters < 0:
            raise ValueError(f"warmup_iters must be >= 0, got {warmup_iters}")
        self.warmup_iters = warmup_iters
        self.seen = 0
        self.times: list[float] = []
        self.images: list[int] = []
        self._start = 0.0

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        _synchronize()
        self._start = time.perf_counter()

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        _synchronize()
        elapsed = time.perf_counter() - self._start
        self.seen += 1
        if self.seen <= self.warmup_iters:
            return
        n = len(data_batch["inputs"]) if isinstance(data_batch, dict) and "inputs" in data_batch else 0
        self.times.append(elapsed)
        self.images.append(n * get_world_size())

    @property
    def train_fps(self) -> float:
        """Images per second over the measured iterations (NaN if none was measured)."""
        total = sum(self.times)
        return sum(self.images) / total if total > 0 else float("nan")

    @property
    def median_fps(self) -> float:
        """Median over the measured iterations of images / iteration time (a steadier second figure)."""
        rates = [n / t for n, t in zip(self.images, self.times, strict=True) if t > 0]
        return statistics.median(rates) if rates else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "train_fps": self.train_fps,
            "train_fps_median": self.median_fps,
            "train_fps_iters": len(self.times),
            "train_fps_warmup_iters": self.warmup_iters,
        }


@HOOKS.register_module(force=True)
class RecordHook(Hook):
    """Per-epoch history (mean train loss, validation metrics) and wandb logging."""

    priority = "LOW"

    def __init__(self, tracker: Any = None, log_interval: int = 50) -> None:
        self.tracker = tracker
        self.log_interval = max(1, log_interval)
        self.history: list[dict[str, Any]] = []
        self.last_metrics: dict[str, float] = {}
        self._losses: list[float] = []

    def before_train_epoch(self, runner: Any) -> None:
        self._losses = []

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        loss = _loss_value(outputs)
        if loss is None:
            return
        self._losses.append(loss)
        if self.tracker is not None and (runner.iter + 1) % self.log_interval == 0:
            values = {"train/loss": loss, "train/lr": _current_lr(runner)}
            if isinstance(outputs, dict):
                for key, value in outputs.items():
                    if key != "loss" and torch.is_tensor(value) and value.numel() == 1:
                        values[f"train/{key}"] = float(value.detach())
            self.tracker.log(values, step=runner.iter + 1)

    def after_train_epoch(self, runner: Any) -> None:
        losses = [x for x in self._losses if math.isfinite(x)]
        entry = {
            "epoch": runner.epoch + 1,
            "iter": runner.iter,
            "train_loss": sum(losses) / len(losses) if losses else float("nan"),
            "lr": _current_lr(runner),
        }
        self.history.append(entry)
        if self.tracker is not None:
            self.tracker.log(
                {"train/epoch_loss": entry["train_loss"], "epoch": entry["epoch"]}, step=runner.iter
            )

    def after_val_epoch(self, runner: Any, metrics: dict[str, float] | None = None) -> None:
        if not metrics:
            return
        self.last_metrics = dict(metrics)
        if self.history and self.history[-1]["epoch"] == runner.epoch:
            self.history[-1]["val"] = dict(metrics)
        if self.tracker is not None:
            self.tracker.log({f"val/{k}": v for k, v in metrics.items()}, step=runner.iter)


def _current_lr(runner: Any) -> float:
    try:
        return float(runner.optim_wrapper.get_lr()["lr"][0])
    except (AttributeError, KeyError, IndexError, TypeError):
        return float("nan")
