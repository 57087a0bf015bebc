"""wandb for every run, through :class:`pws.records.wandb_run.Tracker` (offline unless told otherwise).

Logs the model's scalars every ``interval`` iterations (``train/<name>``, ``train/lr``), each epoch's
history entry (``epoch/<name>``) and each evaluation (``val/<metric>``). The run's summary, with the
paper's number and the difference, is written when the run ends (by :mod:`pws.engine.lifecycle`). When
wandb's service is gone (SLURM's SIGTERM ends it with the rest of the job), the run goes on without wandb,
with a warning: ``metrics.json`` holds the run's record, and the resumed run logs to wandb again.
"""

from __future__ import annotations

import logging
from typing import Any

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from pws.engine.hooks.run_record import RunRecordHook
from pws.engine.outputs import current_lr, scalars

log = logging.getLogger(__name__)


@HOOKS.register_module(name="WandbHook", force=True)
class WandbHook(Hook):
    """Curves into ``tracker`` (a :class:`~pws.records.wandb_run.Tracker`; rank 0 only)."""

    priority = "VERY_LOW"  # after RunRecordHook has added the epoch's entry

    def __init__(self, tracker: Any, interval: int = 50) -> None:
        self.tracker = tracker
        self.interval = max(1, int(interval))

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        if self.tracker is None or not is_main_process() or (runner.iter + 1) % self.interval:
            return
        values = {f"train/{k}": v for k, v in scalars(outputs).items()}
        values["train/lr"] = current_lr(runner)
        self._log(values, runner.iter + 1)

    def after_train_epoch(self, runner: Any) -> None:
        if self.tracker is None or not is_main_process():
            return
        record = next((h for h in runner.hooks if isinstance(h, RunRecordHook)), None)
        if record is not None and record.history:
            entry = record.history[-1]
            self._log({f"epoch/{k}": v for k, v in entry.items() if isinstance(v, (int, float))}, runner.iter)

    def after_val_epoch(self, runner: Any, metrics: dict[str, float] | None = None) -> None:
        if self.tracker is None or not is_main_process() or not metrics:
            return
        self._log({f"val/{k}": v for k, v in metrics.items() if isinstance(v, (int, float))}, runner.iter)

    def _log(self, values: dict[str, Any], step: int) -> None:
        try:
            self.tracker.log(values, step=step)
        except ConnectionError as e:  # the service is gone: the rest of this session goes without wandb
            log.warning("wandb's service is gone (%s): this session goes on without wandb", e)
            self.tracker = None
