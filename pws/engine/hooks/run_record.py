"""The run record: ``metrics.json`` written after every epoch of every app, and its per-epoch history.

Each history entry holds the epoch, the iteration count, the LR of the epoch's last iteration (read from
the optimizer, so the schedule actually applied is what is recorded), the epoch's mean of every scalar the
model logs, over all ranks under DDP (``train_loss`` for the total loss, ``train_<name>`` for the others),
and the evaluation that followed the epoch (the app's metric names). The history and the running sums of
the current epoch travel in every checkpoint, so a resumed run keeps every epoch, exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from mmengine.dist import all_reduce, get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from pws.engine.outputs import current_lr, scalars
from pws.records.metrics_file import write_metrics

KEY = "pws_record"

Summarize = Callable[[dict[str, Any]], dict[str, float]]


@HOOKS.register_module(name="RunRecordHook", force=True)
class RunRecordHook(Hook):
    """Keeps the history and writes ``metrics.json`` (status ``running``) after every epoch.

    ``base``: the record's fixed fields (task, scale, seed, config, versions, ...); ``summarize``: the
    app's mapping from mmengine's evaluation (``{"pascal_voc/mAP": 0.77}``) to the record's metrics in %
    (``{"mAP": 77.0}``); ``extras``: callables adding fields (the throughput); ``previous``: the record an
    earlier session of the run left; ``metric_names``: the record's metrics every evaluation gives.

    mmengine writes an epoch's checkpoint before evaluating it: a run killed in that evaluation resumes
    after the epoch with no evaluation of it. ``before_train`` then evaluates it first (when the train
    loop's validation schedule has one there), with the loop's own hooks (the EMA swapped in), as the run
    that was not stopped did.
    """

    priority = "LOW"

    def __init__(
        self,
        run_dir: str | Path,
        base: dict[str, Any],
        summarize: Summarize,
        extras: tuple[Callable[[], dict[str, Any]], ...] = (),
        previous: dict[str, Any] | None = None,
        metric_names: tuple[str, ...] = (),
    ) -> None:
        self.run_dir = Path(run_dir)
        self.metric_names = metric_names
        self.previous = previous  # the record an earlier session left (a resume takes its evaluations)
        self.base = base
        self.summarize = summarize
        self.extras = extras
        self.history: list[dict[str, Any]] = []
        self.metrics: dict[str, float] = {}  # the latest evaluation, in the record's names
        self.evaluated: dict[str, float] = {}  # the same, as mmengine returned it
        self._sums: dict[str, float] = {}
        self._count = 0
        self._lr = math.nan

    # ----------------------------------------------------------------------------------------- training

    def before_train(self, runner: Any) -> None:
        epoch = runner.train_loop.epoch  # the epochs trained (the checkpoint's)
        unevaluated = self.history and self.history[-1]["epoch"] == epoch and not self.last_epoch_evaluated()
        if unevaluated and runner.train_loop.evaluates_after(epoch):
            runner.val_loop.run()

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        for key, value in _mean_over_ranks(scalars(outputs)).items():
            self._sums[key] = self._sums.get(key, 0.0) + value
        self._count += 1
        self._lr = current_lr(runner)

    def after_train_epoch(self, runner: Any) -> None:
        entry: dict[str, Any] = {"epoch": runner.epoch + 1, "iter": runner.iter, "lr": self._lr}
        for key, total in self._sums.items():
            name = "train_loss" if key == "loss" else f"train_{key}"
            entry[name] = total / self._count if self._count else math.nan
        self.history.append(entry)
        self._sums, self._count = {}, 0
        self.write("running")

    def after_val_epoch(self, runner: Any, metrics: dict[str, float] | None = None) -> None:
        if not metrics:
            return
        self.evaluated = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        self.metrics = self.summarize(self.evaluated)
        if self.history and self.history[-1]["epoch"] == runner.epoch:
            self.history[-1].update(self.metrics)
        self.write("running")

    # -------------------------------------------------------------------------------------- checkpoints

    def before_save_checkpoint(self, runner: Any, checkpoint: dict[str, Any]) -> None:
        checkpoint[KEY] = {
            "history": self.history,
            "metrics": self.metrics,
            "evaluated": self.evaluated,
            "sums": self._sums,
            "count": self._count,
            "lr": self._lr,
        }

    def after_load_checkpoint(self, runner: Any, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get(KEY)
        if saved is None:
            return
        self.history = list(saved["history"])
        self.metrics = dict(saved["metrics"])
        self.evaluated = dict(saved["evaluated"])
        self._sums = dict(saved["sums"])
        self._count = int(saved["count"])
        self._lr = float(saved["lr"])
        self._add_evaluations_written_after(self.previous)

    def _add_evaluations_written_after(self, on_disk: dict[str, Any] | None) -> None:
        """An epoch's checkpoint is written before its evaluation: take that evaluation back from the
        metrics.json written after it (only for epochs the checkpoint has, at the same iteration)."""
        if not on_disk or not self.history:
            return
        disk = {(e.get("epoch"), e.get("iter")): e for e in on_disk.get("history", [])}
        for entry in self.history:
            written = disk.get((entry["epoch"], entry["iter"]), {})
            entry.update({k: v for k, v in written.items() if k not in entry})
        last = self.history[-1]
        if disk.get((last["epoch"], last["iter"])) is not None and on_disk.get("evaluated"):
            latest = on_disk.get("history", [])[-1]
            if (latest.get("epoch"), latest.get("iter")) == (last["epoch"], last["iter"]):
                self.evaluated = dict(on_disk["evaluated"])
                self.metrics = self.summarize(self.evaluated)

    def last_epoch_evaluated(self) -> bool:
        """Whether the last trained epoch's entry holds its evaluation (every one of ``metric_names``)."""
        return bool(self.history) and all(name in self.history[-1] for name in self.metric_names)

    # ----------------------------------------------------------------------------------------- records

    def record(self, status: str, **extra: Any) -> dict[str, Any]:
        """The whole record at this point: base fields, status, metrics, history, extras."""
        out = {**self.base, "status": status, **self.metrics, "evaluated": self.evaluated}
        for add in self.extras:
            out.update(add())
        out["history"] = self.history
        out.update(extra)
        return out

    def write(self, status: str, **extra: Any) -> dict[str, Any]:
        """Write ``metrics.json`` (rank 0 only) and return the record."""
        record = self.record(status, **extra)
        if is_main_process():
            write_metrics(self.run_dir, record)
        return record


def _mean_over_ranks(values: dict[str, float]) -> dict[str, float]:
    """Under DDP, each value averaged over the ranks (each rank logs its own share of the batch), so that
    the history is that of the whole batch, the same on every rank (and in every rank's checkpoint)."""
    if get_world_size() == 1 or not values:
        return values
    keys = sorted(values)
    flat = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    all_reduce(flat, op="mean")
    return dict(zip(keys, flat.tolist(), strict=True))
