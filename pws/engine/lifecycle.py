"""One run, start to end, for every app: :func:`execute`.

1. ``app.plan``: every value checked before any work (:class:`ConfigError`, exit 2); at the full scale,
   :func:`~pws.engine.preflight.preflight` refuses a CPU nobody asked for and partial or generated data.
2. The run directory: created and checked writable, locked for this process (:mod:`pws.engine.lock`),
   temporary files of interrupted writes removed.
3. Skip, resume or start: a record that says ``finished`` or ``diverged`` is skipped unless
   ``force=true`` (which moves the checkpoints aside and starts again); otherwise the newest checkpoint
   (``last_checkpoint``) is checked readable and resumed. An unreadable checkpoint or metrics.json ends
   the run as ``failed`` with the file's path and the way out.
4. ``app.prepare`` (the data) and ``app.mmengine_config`` (the experiment); the process joins its group
   (:mod:`pws.engine.process`) and the run's keys are added by :func:`~pws.engine.run_keys.add_run_keys`
   (work_dir, launcher and backend, SyncBN, seed, resume, the loop, the checkpoint hook, EMA, compile, the
   data workers' shield); wandb's service starts shielded (:mod:`pws.engine.shield`), the engine's hooks
   (:mod:`pws.engine.hooks`; ``train.fused_pws``: :class:`~pws.engine.hooks.FusedStandardizationHook`) are
   registered, and mmengine's Runner trains.
5. The outcome is written to ``metrics.json``: ``finished`` (the last evaluation), ``diverged`` (metrics
   NaN, returned normally so that a sweep goes on), ``failed`` (the reason; raised again), or, on a
   preemption signal, ``running`` with ``interrupted`` (the checkpoint is saved; :class:`Preempted`). The
   run holds the preemption signals from its start to its end: one that arrives while it starts stops it
   as its training starts (:class:`~pws.engine.hooks.PreemptionHook`).
"""

from __future__ import annotations

import logging
import math
import os
import time
import traceback
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pws.data.errors import DataMissingError
from pws.engine.app import App, Plan
from pws.engine.checkpoints import (
    UnreadableCheckpoint,
    check_readable,
    latest_checkpoint,
    mmengine_checkpoints,
    move_aside,
    remove_partial_writes,
)
from pws.engine.device import device_record
from pws.engine.errors import ConfigError, Diverged, Preempted, RunFailed
from pws.engine.hooks import (
    DivergenceHook,
    FusedStandardizationHook,
    PreemptionHook,
    RandomStateHook,
    RunRecordHook,
    ThroughputHook,
    WandbHook,
)
from pws.engine.lock import RunDirLock
from pws.engine.preflight import preflight
from pws.engine.process import Process, batch_record, current, flush_denormals, join, unwritable
from pws.engine.run_keys import add_run_keys
from pws.engine.shield import shielded
from pws.records.metrics_file import (
    DONE_STATUSES,
    UnreadableRecord,
    atomic_write_bytes,
    environment_info,
    read_metrics,
    write_metrics,
)
from pws.records.wandb_run import Tracker

log = logging.getLogger("pws.engine")

CONFIG_FILE = "config.yaml"


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    """The config with the values the run uses: every interpolation resolved (``optim.lr:
    ${scale.classify.sgd_lr}`` becomes the number); one that cannot resolve leaves the config as written
    (the app's validation then names the problem)."""
    try:
        config = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # noqa: BLE001 - any resolution error: record what was given
        config = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(config, dict)
    return config


def engine_record(app: App, cfg: DictConfig, overrides: list[str], process: Process) -> dict[str, Any]:
    """The fields every record has, whatever the app (what a run is, where and with what it ran: the
    device's type, name and count among them)."""
    return {
        "task": app.name,
        "scale": OmegaConf.select(cfg, "scale.name"),
        "seed": OmegaConf.select(cfg, "seed"),
        "table": OmegaConf.select(cfg, "table"),
        "row": OmegaConf.select(cfg, "row"),
        "cell": OmegaConf.select(cfg, "cell"),
        "method": OmegaConf.select(cfg, "norm.method"),
        "model": OmegaConf.select(cfg, "model.name"),
        "data": OmegaConf.select(cfg, "data.name"),
        "overrides": list(overrides),
        "config": resolved_config(cfg),
        **device_record(process),
        **environment_info(),
    }


def execute(
    app: App,
    cfg: DictConfig,
    run_dir: str | Path,
    overrides: list[str] | None = None,
    base_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Run (or resume, or skip) ``cfg`` of ``app`` in ``run_dir``; return its record (see the module)."""
    started = time.perf_counter()
    preemption = PreemptionHook()
    preemption.hold()  # a preemption signal from here on stops the run as its training starts
    try:
        return _execute(app, cfg, Path(run_dir), list(overrides or []), base_dir, preemption, started)
    finally:
        preemption.restore_handlers()


def _execute(app: App, cfg: DictConfig, run_dir: Path, overrides: list[str], base_dir: str | Path | None,
             preemption: PreemptionHook, started: float) -> dict[str, Any]:  # fmt: skip
    process = current()
    base = engine_record(app, cfg, overrides, process)
    if (problem := unwritable(run_dir)) is not None:
        raise RunFailed(problem)
    try:
        plan = app.plan(cfg, process.world_size)
        preflight(cfg, base_dir or os.getcwd())
    except ConfigError as e:
        if process.is_main:
            write_metrics(run_dir, {**base, "status": "failed", "error": f"invalid configuration: {e}"})
        raise
    lock = RunDirLock(run_dir)
    if process.is_main:
        lock.acquire()
    try:
        return _Run(app, plan, cfg, run_dir, base, process, started, preemption).go(
            Path(base_dir or os.getcwd())
        )
    finally:
        lock.release()


class _Run:
    """The state of one invocation of :func:`execute` (one process)."""

    def __init__(
        self,
        app: App,
        plan: Plan,
        cfg: DictConfig,
        run_dir: Path,
        base: dict[str, Any],
        process: Process,
        started: float,
        preemption: PreemptionHook,
    ) -> None:
        self.app, self.plan, self.cfg, self.run_dir = app, plan, cfg, run_dir
        self.preemption = preemption
        speed = {"fused_pws": plan.fused_pws, "compile": plan.compile}  # the speed options, every app
        batch = batch_record(plan.total_batch, process.world_size, plan.lr, plan.sync_bn)
        self.base = {**base, **app.base_record(plan, cfg), **speed, **batch}
        self.process, self.started = process, started
        self.is_main = process.is_main
        self.previous: dict[str, Any] | None = None  # the record an earlier session left

    def go(self, base_dir: Path) -> dict[str, Any]:
        if self.is_main:
            for path in remove_partial_writes(self.run_dir):
                log.info("removed %s (a write that was interrupted)", path)
        skip = self._skip_or_clean()
        if skip is not None:
            return skip
        checkpoint = self._checkpoint()
        try:
            prepared = self.app.prepare(self.plan, base_dir)
        except DataMissingError as e:
            raise self._fail(RunFailed(f"data missing: {e}")) from e
        except ValueError as e:  # a malformed annotation file, ... (the message names it)
            raise self._fail(RunFailed(str(e))) from e
        if self.is_main:
            text = OmegaConf.to_yaml(self.cfg, resolve=True)
            atomic_write_bytes(self.run_dir / CONFIG_FILE, text.encode())
        return self._train(prepared, checkpoint)

    # --------------------------------------------------------------------------------------- decisions

    def _skip_or_clean(self) -> dict[str, Any] | None:
        try:
            record = read_metrics(self.run_dir, strict=True)
        except UnreadableRecord as e:
            if not self.plan.force:
                raise self._fail(
                    RunFailed(f"{e}; force=true moves it aside and starts the run again"), write=False
                ) from e
            record = None
            if self.is_main:
                e.path.rename(e.path.with_name(e.path.name + ".unreadable"))
        self.previous = record
        done = record is not None and record.get("status") in DONE_STATUSES
        if done and not self.plan.force:
            log.info("%s: already %s; force=true runs it again", self.run_dir, record.get("status"))  # type: ignore[union-attr]
            return record
        if (done or self.plan.force) and self.is_main:
            for path in move_aside(self.run_dir):
                log.info("force=true: moved %s aside", path)
        return None

    def _checkpoint(self) -> Path | None:
        try:
            path = latest_checkpoint(self.run_dir)
            if path is not None:
                check_readable(path)
        except UnreadableCheckpoint as e:
            raise self._fail(RunFailed(f"{e}; force=true moves it aside and starts the run again")) from e
        return path

    # ---------------------------------------------------------------------------------------- training

    def _train(self, prepared: dict[str, Any], checkpoint: Path | None) -> dict[str, Any]:
        from mmengine.config import Config
        from mmengine.runner import Runner
        from mmengine.utils import import_modules_from_strings

        plan = self.plan
        mm = self.app.mmengine_config(plan, prepared, self.process.world_size)
        add_run_keys(mm, plan, app_name=self.app.name, run_dir=self.run_dir, checkpoint=checkpoint,
                     process=self.process, group=join(self.process))  # fmt: skip
        tracker = None
        speed = ThroughputHook(warmup_iters=plan.fps_warmup_iters)
        record = RunRecordHook(
            self.run_dir,
            self.base,
            lambda ev: self.app.summarize(plan, ev),
            extras=(speed.summary, self._wall_time),
            previous=self.previous,
            metric_names=tuple(self.app.metric_names(plan)),
        )
        preemption = self.preemption
        self.record = record
        try:
            with shielded():  # wandb's service starts with the preemption signals blocked
                tracker = self._tracker() if self.is_main else None
            if "custom_imports" in mm:  # the modules the config names register their types (an app's hook)
                import_modules_from_strings(**mm["custom_imports"])
            runner = Runner.from_cfg(Config(mm))
            for hook in (
                DivergenceHook(),
                speed,
                RandomStateHook(),
                record,
                WandbHook(tracker, plan.log_interval),
                preemption,
            ):
                runner.register_hook(hook)
            if plan.fused_pws:  # the one place both apps' built models pass through
                runner.register_hook(FusedStandardizationHook())
            if self.is_main:
                record.write("running")
            with mmengine_checkpoints(), flush_denormals():
                runner.train()  # resumed after a killed evaluation: the record hook evaluates first
            result = record.write("finished")
        except Diverged as e:
            log.warning("diverged: %s; metrics recorded as NaN", e)
            nan = {k: math.nan for k in self.app.metric_names(plan)}
            result = record.write("diverged", error=str(e), diverged_at=str(e), **nan)
        except Preempted as e:
            log.warning("%s", e)
            record.write("running", interrupted=str(e))
            self._close(tracker, None)
            raise
        except Exception as e:
            record.write("failed", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
            self._close(tracker, None)
            raise
        self._close(tracker, result)
        return result

    def _tracker(self) -> Tracker | None:
        """The run's wandb run; None, with a warning, when wandb cannot start it (a resumed run whose
        earlier service still holds its id after a requeue, say): metrics.json is the record, wandb the
        dashboard, and a run of days does not fail for its dashboard."""
        plan, cfg = self.plan, self.cfg
        try:
            return self._start_tracker(plan, cfg)
        except Exception as e:  # noqa: BLE001 - wandb's errors have no common base class
            log.warning("wandb could not start this run (%s: %s): it goes on without wandb",
                        type(e).__name__, e)
            return None

    def _start_tracker(self, plan: Any, cfg: DictConfig) -> Tracker:
        return Tracker(
            self.run_dir,
            self.base["config"],  # the resolved config, as the record holds it
            mode=plan.wandb_mode,
            table=cfg.get("table"),
            cell=cfg.get("cell"),
            group=cfg.get("row"),
            tags=[
                self.app.name,
                str(self.base.get("scale")),
                str(self.base.get("model")),
                str(self.base.get("method")),
            ],
        )

    def _close(self, tracker: Tracker | None, result: dict[str, Any] | None) -> None:
        """Finish the wandb run with the record as its summary. metrics.json is already written: a failure
        here (a bad published.yaml, say) is a warning naming it, never a failed run."""
        if tracker is None:
            return
        summary = {k: v for k, v in (result or {}).items() if isinstance(v, (int, float, str))}
        try:
            tracker.finish(summary)
        except Exception as e:  # noqa: BLE001 - the run's result stands; the dashboard lacks its summary
            log.warning("wandb summary not written: %s: %s", type(e).__name__, e)

    def _wall_time(self) -> dict[str, float]:
        return {"wall_time_s": time.perf_counter() - self.started}

    def _fail(self, error: RunFailed, write: bool = True) -> RunFailed:
        """``error``, after recording the run as failed with its message (for the caller to raise)."""
        if write and self.is_main:
            write_metrics(self.run_dir, {**self.base, "status": "failed", "error": str(error)})
        return error
