"""The one place where a classification run talks to wandb (through :class:`pws.runs.tracking.Tracker`).

Project ``pws-<table>`` (``pws-repro`` for a run outside a table), group = the table row (``row=`` or, for a
cell of ``experiments/``, its row), run name = the cell (for a run outside a table: its run directory below
the scale, ``<data>/<model>/<norm>/<overrides>``). Curves are logged once per epoch; at the end the run's
record goes to :meth:`Tracker.finish`, which also adds the paper's number for the cell and the difference
(``paper/top1_error``, ``delta/top1_error``). wandb is the dashboard, never a reason to fail a run: if it
cannot start, the run goes on with ``metrics.json`` alone.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pws.classify.config import Plan
from pws.runs.tracking import Tracker

log = logging.getLogger("pws.classify")


def open_tracker(plan: Plan, run_dir: Path, config: dict[str, Any], run_name: str) -> Tracker | None:
    """A wandb run for this run (call on rank 0 only)."""
    try:
        return Tracker(
            run_dir,
            config,
            mode=plan.wandb_mode,
            group=plan.row,
            name=plan.cell or run_name,
            tags=[plan.scale, plan.model, plan.method.method, plan.data],
            table=plan.table,
            cell=plan.cell,
        )
    except Exception as e:  # noqa: BLE001 - see the module docstring
        log.warning("wandb could not start (%s): continuing without it", e)
        return None


def log_epoch(tracker: Tracker | None, entry: dict[str, Any]) -> None:
    """One epoch's curves (train loss and error, test error and loss, LR, images/s) at step = epoch."""
    if tracker is not None:
        values = {k: v for k, v in entry.items() if k != "epoch" and v is not None}
        tracker.log(values, step=int(entry["epoch"]))


def close_tracker(tracker: Tracker | None, record: dict[str, Any]) -> None:
    """The final record into the run's summary (with the paper comparison), then close the run."""
    if tracker is None:
        return
    try:
        tracker.finish(record)
    except Exception as e:  # noqa: BLE001
        log.warning("wandb could not finish (%s); metrics.json holds the results", e)
