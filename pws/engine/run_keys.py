"""The run's keys of an mmengine config, for every app: :func:`add_run_keys`.

An app states the experiment (model, data, evaluator, optimizer, schedule: ``App.mmengine_config``); this
module, and nothing else, adds what belongs to the run: the work directory, the launcher and the process
group's keys (:func:`pws.engine.process.join`'s), SyncBN (``train.sync_bn``), the seed and
randomness, resume / load_from, the engine's loop (:class:`~pws.engine.loops.ExactResumeEpochLoop`), the
checkpoint hook's kind, the EMA (mmengine's ``EMAHook`` with :class:`~pws.engine.ema.TFStyleEMA`), the
Runner's ``compile``, the Runner's own names and the data workers' signal shield (:mod:`pws.engine.shield`).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pws.engine.ema
import pws.engine.loops  # noqa: F401  (registers the loop LOOP names)
from pws.engine.app import Plan
from pws.engine.process import Process
from pws.engine.shield import shield_loaders

RUNNERS = itertools.count(1)  # the Runners this process built (their experiment names)
LOOP = "ExactResumeEpochLoop"


def speed_options(plan: Plan) -> dict[str, Any]:
    """The Runner's ``compile`` entry for ``train.compile``: mmengine compiles the model's ``train_step``
    with ``torch.compile(mode=...)`` after wrapping it; nothing for eager (None)."""
    return {} if plan.compile is None else {"compile": dict(mode=plan.compile)}


def ema_hooks(plan: Plan) -> list[dict[str, Any]]:
    """mmengine's ``EMAHook`` (it swaps the average in for evaluation and checkpoints) for ``train.ema``;
    none when off."""
    if plan.ema_decay is None:
        return []
    return [dict(type="EMAHook", ema_type="TFStyleEMA", decay=plan.ema_decay, warmup=plan.ema_warmup)]


def add_run_keys(
    mm: dict[str, Any],
    plan: Plan,
    *,
    app_name: str,
    run_dir: Path,
    checkpoint: Path | None,
    process: Process,
    group: dict[str, Any],
) -> dict[str, Any]:
    """``mm``, an app's experiment, with the run's keys (see the module); ``checkpoint``: the one to resume
    (None: a fresh start); ``group``: the Runner's keys of the process group ``process`` joined."""
    group = dict(group)
    mm["env_cfg"] = {**mm.get("env_cfg", {}), **group.pop("env_cfg", {})}
    if plan.sync_bn and process.distributed:  # BN over the total batch
        mm["sync_bn"] = "torch"
    mm.update(
        group,
        work_dir=str(run_dir),
        randomness=dict(seed=plan.seed, deterministic=False),
        resume=checkpoint is not None,
        load_from=str(checkpoint) if checkpoint is not None else None,
        # mmengine names its logger, message hub and visualizer after the second the Runner starts: two
        # runs of one process started within a second (a sweep) would share them (and one log file)
        experiment_name=f"pws-{app_name}-{next(RUNNERS)}",
        **speed_options(plan),
    )
    if isinstance(mm.get("visualizer"), dict) and "name" in mm["visualizer"]:
        # mmdet's configs name theirs "visualizer": every later Runner of the process would get the first
        # one back, writing its scalars into the first run's directory
        mm["visualizer"] = {**mm["visualizer"], "name": f"{mm['experiment_name']}-visualizer"}
    train_cfg = {k: v for k, v in mm["train_cfg"].items() if k != "by_epoch"}
    mm["train_cfg"] = {**train_cfg, "type": LOOP, "seed": plan.seed}
    mm["custom_hooks"] = [*mm.get("custom_hooks", []), *ema_hooks(plan)]
    hooks = dict(mm.get("default_hooks", {}))
    hooks["checkpoint"] = {**hooks.get("checkpoint", {}), "type": "CheckpointHook", "by_epoch": True,
                           "save_last": True}  # fmt: skip
    mm["default_hooks"] = hooks
    shield_loaders(mm, process.rank, plan.seed)
    return mm
