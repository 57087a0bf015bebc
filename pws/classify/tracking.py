"""The one place where a classification run talks to wandb (through :class:`pws.runs.tracking.Tracker`).

Project ``pws-<table>`` (``pws-repro`` for a run outside a table), group = the table row, run name = the
cell (for a run outside a table: ``<data>/<model>/<norm>/<overrides>``, its run directory below the scale).
The final summary is :func:`final_summary`: the run's metrics plus, for a table cell, the paper's number
and the difference (:func:`paper_comparison`, the single hook for that).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pws.classify.config import Plan
from pws.runs.tracking import Tracker

log = logging.getLogger("pws.classify")

SUMMARY_KEYS = ("status", "top1_error", "images_per_s", "wall_time_s", "epochs_done", "scale", "seed")


def open_tracker(plan: Plan, run_dir: Path, config: dict[str, Any], run_name: str | None) -> Tracker | None:
    """A wandb run for this run (rank 0 only; None if wandb cannot start: metrics.json is the record)."""
    try:
        return Tracker(
            run_dir,
            config,
            mode=plan.wandb_mode,
            project=f"pws-{plan.table}" if plan.table else "pws-repro",
            group=plan.row,
            name=plan.cell or run_name,
            tags=[plan.scale, plan.model, plan.method.method, plan.data],
        )
    except Exception as e:  # noqa: BLE001 - wandb is the dashboard, never a reason to fail a run
        log.warning("wandb could not start (%s): continuing without it", e)
        return None


def log_epoch(tracker: Tracker | None, entry: dict[str, Any]) -> None:
    if tracker is not None:
        tracker.log({k: v for k, v in entry.items() if k != "epoch"}, step=int(entry["epoch"]))


def final_summary(record: dict[str, Any]) -> dict[str, Any]:
    """What the wandb run's summary holds at the end: the final metrics and the paper comparison."""
    summary = {k: record[k] for k in SUMMARY_KEYS if k in record}
    summary.update(paper_comparison(record))
    return summary


def paper_comparison(record: dict[str, Any]) -> dict[str, Any]:
    """``{"paper/top1_error": ..., "delta/top1_error": ...}`` for a table cell, ``{}`` otherwise.

    The published numbers belong to :mod:`pws.results` (``paper_summary``); this is the only call into it.
    """
    if not record.get("table") or not record.get("cell"):
        return {}
    try:
        from pws.results.published import paper_summary
    except ImportError:
        return {}
    try:
        return paper_summary(record["table"], record["cell"], record)
    except (OSError, ValueError) as e:  # a missing or unreadable results/published.yaml
        log.warning("no paper comparison for %s/%s: %s", record["table"], record["cell"], e)
        return {}


def close_tracker(tracker: Tracker | None, record: dict[str, Any]) -> None:
    if tracker is None:
        return
    try:
        tracker.finish(final_summary(record))
    except Exception as e:  # noqa: BLE001
        log.warning("wandb could not finish (%s); metrics.json holds the results", e)
