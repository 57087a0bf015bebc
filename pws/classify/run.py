"""One classification run, start to end: :func:`run` (the Hydra app calls it; tests call it directly).

1. Validate the config into a :class:`~pws.classify.config.Plan` (an invalid value stops here, before
   any work, with one :class:`~pws.classify.config.ConfigError` listing every problem).
2. Skip if the run directory's ``metrics.json`` already says ``finished`` or ``diverged``, unless
   ``force=true`` (which then starts it again from scratch). Otherwise resume from
   ``checkpoints/last.pt`` if there is one.
3. Join torchrun's processes (if any), build the data (missing data: :class:`RunFailed` naming the path
   and how to get it), the model and the optimizer, and train (:class:`~pws.classify.trainer.Trainer`).
4. Leave ``config.yaml`` (the resolved config), ``metrics.json`` (updated after every epoch) and the
   checkpoint in the run directory; only rank 0 writes.

Outcomes: ``finished``; ``diverged`` (non-finite loss: top1_error NaN, returns normally so a sweep goes
on); preempted (SIGTERM/SIGUSR1: checkpoint saved, :class:`Preempted` raised, the app exits 0);
``failed`` (the record says why and the error is raised again).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from pws.classify import checkpoint as ckpt
from pws.classify import distributed
from pws.classify.config import ConfigError, Plan, RunFailed, make_plan
from pws.classify.data import build_datasets
from pws.classify.preemption import Preempted, PreemptionGuard
from pws.classify.progress import Progress
from pws.classify.record import base_record, failed_record, make_record
from pws.classify.tracking import close_tracker, log_epoch, open_tracker
from pws.classify.trainer import Trainer, TrainState
from pws.data.errors import DataMissingError
from pws.runs.record import DONE_STATUSES, Diverged, read_metrics, write_metrics
from pws.runs.tracking import Tracker

log = logging.getLogger("pws.classify")

CONFIG_FILE = "config.yaml"


def run(
    cfg: DictConfig,
    run_dir: str | Path,
    overrides: list[str] | None = None,
    *,
    step_callback: Callable[[TrainState], None] | None = None,
) -> dict[str, Any]:
    """Run (or resume, or skip) the classification run ``cfg`` in ``run_dir``; return its record.

    ``overrides`` are the command-line overrides that define the run (recorded in metrics.json).
    ``step_callback`` is called after every training step (tests use it to send signals).
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    overrides = list(overrides or [])
    is_main = distributed.rank_from_env() == 0
    try:
        plan = make_plan(cfg)
    except ConfigError as e:
        if is_main:
            write_metrics(run_dir, failed_record(base_record(None, cfg, overrides), str(e)))
        raise
    for note in plan.notes:
        log.info(note)

    ctx = distributed.setup(plan.device)
    # Denormal floats (activations and gradients of nets without output norms get tiny) slow CPU kernels
    # down by orders of magnitude; flush them to zero during the run (torch's default is off again after).
    flush = ctx.device.type == "cpu" and torch.set_flush_denormal(True)
    session = _Session(plan, ctx, cfg, run_dir, overrides=overrides, started=started)
    try:
        return session.execute(step_callback)
    finally:
        if flush:
            torch.set_flush_denormal(False)
        distributed.teardown(ctx)


class _Session:
    """The state of one invocation of :func:`run` (one process)."""

    def __init__(self, plan: Plan, ctx: distributed.DistContext, cfg: DictConfig, run_dir: Path, *,
                 overrides: list[str], started: float) -> None:  # fmt: skip
        self.plan, self.ctx, self.cfg, self.run_dir = plan, ctx, cfg, run_dir
        self.started = started
        self.base = base_record(plan, cfg, overrides)
        self.trainer: Trainer | None = None
        self.tracker: Tracker | None = None
        self.num_params: int | None = None

    # ----------------------------------------------------------------------------------------------

    def execute(self, step_callback: Callable[[TrainState], None] | None) -> dict[str, Any]:
        plan, ctx = self.plan, self.ctx
        decision = ctx.broadcast_object(self._decide() if ctx.is_main else None)
        if decision == "skip":
            record = read_metrics(self.run_dir)
            assert record is not None
            log.info("%s: already %s (top1_error %s); force=true reruns it", self.run_dir,
                     record.get("status"), record.get("top1_error"))  # fmt: skip
            return record
        state = None
        if decision == "resume":
            state = ckpt.load(ckpt.checkpoint_path(self.run_dir))
        self._write_config()

        try:
            try:
                train_set, test_set, num_classes = build_datasets(plan, ctx)
            except DataMissingError as e:
                raise RunFailed(f"data missing: {e}") from e
            except ValueError as e:
                raise ConfigError(f"invalid data options: {e}") from e
            ckpt.seed_everything(plan.seed)
            model = self._build_model(num_classes)
            start_epoch = state["train_state"]["epoch"] if state else 0
            progress = Progress(plan.epochs, start_epoch, enabled=ctx.is_main)
            guard = PreemptionGuard()
            self.trainer = Trainer(
                plan, ctx, model, train_set, test_set, guard=guard, progress=progress,
                save_checkpoint=self._save_checkpoint, on_epoch=self._on_epoch, step_callback=step_callback,
            )  # fmt: skip
            self.trainer.restore(state)
            s = self.trainer.state
            if state is not None:
                log.info("resuming %s at epoch %d step %d", self.run_dir, s.epoch + 1, s.step)
            log.info(
                "%s: %s + %s %s on %s, %s; %d epochs (LR x%g after %s), batch %d (%d per rank x %d), LR %g, "
                "weight decay %g, %d parameters", self.run_dir, plan.model, plan.method.method,
                plan.method.options, plan.data, ctx.device, plan.epochs, plan.lr_factor,
                plan.milestones or "never", plan.batch_size, plan.per_rank_batch, ctx.world_size, plan.lr,
                plan.weight_decay, self.num_params,
            )  # fmt: skip
            self._write("running")
            if ctx.is_main:
                config = OmegaConf.to_container(self.cfg, resolve=True)
                self.tracker = open_tracker(plan, self.run_dir, {**config, "plan": plan.summary()},  # type: ignore[dict-item]
                                            self._run_name())  # fmt: skip
            redirect = _tqdm_logging() if progress.tty and ctx.is_main else nullcontext()
            with guard, redirect:
                try:
                    self.trainer.fit()
                except Preempted as e:
                    self._write("running", interrupted=str(e))
                    log.warning("%s", e)
                    guard.chain()  # a requeue handler installed before ours (submitit)
                    raise
                finally:
                    progress.close()
            return self._write("finished")
        except Diverged as e:
            log.warning("diverged: %s; top1_error recorded as NaN", e)
            return self._write("diverged", diverged_at=str(e))
        except Preempted:
            raise
        except Exception as e:
            if self.ctx.is_main:
                message = str(e) if isinstance(e, (ConfigError, RunFailed)) else f"{type(e).__name__}: {e}"
                extra = {"history": self.trainer.state.history} if self.trainer is not None else {}
                write_metrics(self.run_dir, failed_record(self.base, message, **extra))
            raise
        finally:
            record = read_metrics(self.run_dir) if ctx.is_main else None
            close_tracker(self.tracker, record or {})
            self.tracker = None

    # ----------------------------------------------------------------------------------------------

    def _decide(self) -> str:
        """fresh, resume or skip (rank 0 decides for all)."""
        record = read_metrics(self.run_dir)
        done = record is not None and record.get("status") in DONE_STATUSES
        if done and not self.plan.force:
            return "skip"
        if done:
            log.info("%s: force=true: starting the %s run again from scratch", self.run_dir, record["status"])
            ckpt.checkpoint_path(self.run_dir).unlink(missing_ok=True)
            return "fresh"
        return "resume" if ckpt.checkpoint_path(self.run_dir).is_file() else "fresh"

    def _build_model(self, num_classes: int) -> torch.nn.Module:
        from pws.models.classifiers import build_classifier

        plan = self.plan
        try:
            model = build_classifier(plan.model, plan.method, num_classes, **plan.model_kwargs)
        except ValueError as e:
            raise ConfigError(f"invalid model options: {e}") from e
        self.num_params = sum(p.numel() for p in model.parameters())
        memory_format = torch.channels_last if plan.channels_last else torch.contiguous_format
        return model.to(self.ctx.device, memory_format=memory_format)

    def _write_config(self) -> None:
        if self.ctx.is_main:
            from pws.runs.record import atomic_write_bytes

            text = OmegaConf.to_yaml(self.cfg, resolve=True)
            atomic_write_bytes(self.run_dir / CONFIG_FILE, text.encode())

    def _save_checkpoint(self, state: dict[str, Any]) -> None:
        if self.ctx.is_main:
            state["train_state"]["wall_time_s"] = self._wall_time()
            ckpt.save(ckpt.checkpoint_path(self.run_dir), state)

    def _on_epoch(self, state: TrainState) -> None:
        self._write("running")
        if self.ctx.is_main and state.history:
            log_epoch(self.tracker, state.history[-1])

    def _wall_time(self) -> float:
        assert self.trainer is not None
        return self.trainer.state.wall_time_s + (time.perf_counter() - self.started)

    def _write(self, status: str, **extra: Any) -> dict[str, Any]:
        assert self.trainer is not None
        record = make_record(self.base, self.plan, self.trainer.state, status=status,
                             wall_time_s=self._wall_time(), images_per_s=self.trainer.images_per_s,
                             num_params=self.num_params, **extra)  # fmt: skip
        if self.ctx.is_main:
            write_metrics(self.run_dir, record)
        return record

    def _run_name(self) -> str:
        parts = self.run_dir.parts
        return "/".join(parts[-4:]) if len(parts) >= 4 else str(self.run_dir)


def _tqdm_logging() -> Any:
    from tqdm.contrib.logging import logging_redirect_tqdm

    return logging_redirect_tqdm()
