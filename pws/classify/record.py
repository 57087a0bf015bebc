"""The ``metrics.json`` of a classification run (the shape of :mod:`pws.runs.record`), built from its state.

Statuses: ``running`` (started, or stopped by a preemption signal: ``interrupted`` names it), ``finished``,
``diverged`` (``top1_error`` NaN, ``diverged_at`` says where), ``failed`` (``error`` says why).
``top1_error`` is the test error (%) after the last epoch (of the EMA weights with ``ema.enabled``);
``images_per_s`` is the training throughput over all ranks (forward, backward and SGD step, data loading
included), measured after the first two steps of each epoch; ``wall_time_s`` adds up every session of
the run.
"""

from __future__ import annotations

import math
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pws.classify.config import Plan
from pws.classify.trainer import TrainState
from pws.runs.record import environment_info

TASK = "classify"


def base_record(plan: Plan | None, cfg: DictConfig | None, overrides: list[str]) -> dict[str, Any]:
    """The fields every record has, from the plan (or from the raw config when the plan is invalid)."""
    if plan is not None:
        ident = {
            "scale": plan.scale, "seed": plan.seed, "table": plan.table, "row": plan.row, "cell": plan.cell,
            "method": plan.method.method, "model": plan.model, "data": plan.data,
        }  # fmt: skip
    else:
        ident = {
            "scale": _select(cfg, "scale.name"), "seed": _select(cfg, "seed"), "table": _select(cfg, "table"),
            "row": _select(cfg, "row"), "cell": _select(cfg, "cell"), "method": _select(cfg, "norm.method"),
            "model": _select(cfg, "model.name"), "data": _select(cfg, "data.name"),
        }  # fmt: skip
    return {"task": TASK, **ident, "overrides": list(overrides), **environment_info()}


def make_record(
    base: dict[str, Any],
    plan: Plan,
    state: TrainState,
    *,
    status: str,
    wall_time_s: float,
    images_per_s: float | None,
    num_params: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The full record for ``status`` from the training state."""
    if status == "diverged":
        top1: float | None = math.nan
    elif state.last_eval is not None:
        top1 = state.last_eval["test_error"]
    else:
        top1 = None
    record = {
        **base,
        "status": status,
        "top1_error": top1,
        "test_loss": state.last_eval["test_loss"] if state.last_eval and status != "diverged" else None,
        "epochs": plan.epochs,
        "epochs_done": state.epoch,
        "history": state.history,
        "first_step_loss": state.first_step_loss,
        "images_per_s": images_per_s,
        "wall_time_s": wall_time_s,
        "world_size": plan.world_size,
        "device": plan.device,
        "sessions": state.sessions,
        "num_params": num_params,
        "plan": plan.summary(),
        **extra,
    }
    return record


def failed_record(base: dict[str, Any], error: str, **extra: Any) -> dict[str, Any]:
    return {**base, "status": "failed", "top1_error": None, "error": error, **extra}


def _select(cfg: DictConfig | None, key: str) -> Any:
    if cfg is None:
        return None
    try:
        return OmegaConf.select(cfg, key, default=None)
    except Exception:  # noqa: BLE001 - an unresolvable interpolation: leave the field empty
        return None
