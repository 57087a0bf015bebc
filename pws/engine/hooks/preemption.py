"""Cluster preemption: SIGTERM, SIGUSR1 and SIGUSR2 (submitit's) make the run save and stop.

The signal handler only records the signal. After the current training iteration (all its hooks done),
every rank learns of it (one all-reduce per iteration under DDP), the checkpoint of exactly that iteration
is written (``preempted_iter_<N>.pth``, and mmengine's ``last_checkpoint`` points to it) and
:class:`~pws.engine.errors.Preempted` is raised; the app exits 0 and the same command resumes. A handler
that was installed before ours (submitit's requeue handler) is called after the checkpoint is written, so
the job is still requeued. The handlers are put back when training ends. A process forked while they are
installed (mmdet's evaluation pool, data workers) starts with the default handlers (``os.register_at_fork``),
so that the signal ends it as by default and a pool can still be terminated: a Python-level handler in
the child did not reliably run when ``Pool.terminate`` signalled a worker blocked on the pool's queue lock,
and the evaluation hung.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from mmengine.dist import all_reduce, get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from pws.engine.errors import Preempted
from pws.runs.record import atomic_write_bytes

log = logging.getLogger(__name__)

SIGNALS: tuple[str, ...] = ("SIGTERM", "SIGUSR1", "SIGUSR2")
PREFIX = "preempted_iter_"
LAST_CHECKPOINT = "last_checkpoint"  # mmengine's pointer to the newest checkpoint of a work_dir


def _default_handlers_in_child() -> None:
    """In a forked child: the preemption signals back to their default action where ours are installed."""
    for name in SIGNALS:
        signum = getattr(signal, name, None)
        handler = signal.getsignal(signum) if signum is not None else None
        if isinstance(getattr(handler, "__self__", None), PreemptionHook):
            with contextlib.suppress(ValueError):  # not the child's main thread: nothing to do there
                signal.signal(signum, signal.SIG_DFL)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_default_handlers_in_child)


@HOOKS.register_module(name="PreemptionHook", force=True)
class PreemptionHook(Hook):
    """Checkpoint at the iteration a preemption signal arrived in, then raise :class:`Preempted`."""

    priority = "LOWEST"  # after every other hook of the iteration (EMA, schedulers, records)

    def __init__(self, signals: tuple[str, ...] = SIGNALS) -> None:
        self.signals = [getattr(signal, s) for s in signals if hasattr(signal, s)]
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self._pid = os.getpid()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._pid:  # a forked child (a data or evaluation worker): die as by default
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if self.signum is None:
            self.signum = signum
            log.warning("received %s: saving a checkpoint after this iteration", signal.Signals(signum).name)

    def before_train(self, runner: Any) -> None:
        if threading.current_thread() is not threading.main_thread():
            log.warning("not in the main thread: preemption signals are not handled")
            return
        self._pid = os.getpid()
        for s in self.signals:
            self._previous[s] = signal.signal(s, self._handle)

    def after_train(self, runner: Any) -> None:
        self.restore_handlers()

    def restore_handlers(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

    def _requested(self) -> int | None:
        if get_world_size() == 1:
            return self.signum
        flag = torch.tensor([self.signum or 0], dtype=torch.int64)
        all_reduce(flag, op="max")
        return int(flag.item()) or None

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        signum = self._requested()
        if signum is None:
            return
        name = f"{PREFIX}{runner.iter + 1}.pth"
        runner.save_checkpoint(runner.work_dir, name, by_epoch=False)
        if is_main_process():
            atomic_write_bytes(
                Path(runner.work_dir) / LAST_CHECKPOINT, str(Path(runner.work_dir) / name).encode()
            )
        previous = self._previous.get(signum)
        self.restore_handlers()
        if callable(previous) and previous is not signal.default_int_handler:
            previous(signum, None)  # a requeue handler installed before ours (submitit)
        raise Preempted(signum, runner.epoch, runner.iter + 1)

    def after_train_epoch(self, runner: Any) -> None:
        """Remove the preemption checkpoints of earlier sessions once an epoch checkpoint supersedes them."""
        if not is_main_process():
            return
        pointer = Path(runner.work_dir) / LAST_CHECKPOINT
        newest = pointer.read_text().strip() if pointer.is_file() else ""
        for path in Path(runner.work_dir).glob(f"{PREFIX}*.pth"):
            if str(path) != newest:
                path.unlink(missing_ok=True)
