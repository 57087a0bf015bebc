"""Cluster preemption: SIGTERM, SIGUSR1 and SIGUSR2 (submitit's) make the run save and stop.

The signal handler only records the signal. The run holds the signals from its start
(:meth:`PreemptionHook.hold`): one that arrived before training stops the run as training starts. After the
current training iteration (all its hooks done), every rank learns of it (one all-reduce per iteration under
DDP), the checkpoint of exactly that iteration is written (``preempted_iter_<N>.pth``, and mmengine's
``last_checkpoint`` points to it) and :class:`~pws.engine.errors.Preempted` is raised; the app exits 0 and
the same command resumes. A signal that arrives during an evaluation abandons it at once (an evaluation can
outlast the launcher's notice, a COCO one by minutes): the checkpoint of the epoch it evaluates is already
written (mmengine saves before evaluating) and the resumed run evaluates that epoch first. A second signal
(during the save, say) changes nothing. A handler that was installed before ours (submitit's requeue
handler) is called after the checkpoint is written, so the job is still requeued. The handlers are put back
when the run ends. The run's other processes (data workers, mmdet's evaluation pool, wandb's service) ignore
the signals (:mod:`pws.engine.shield`): SLURM signals every process of a job, and the main process alone
decides.
"""

from __future__ import annotations

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
from pws.engine.shield import SIGNALS, in_forked_child, signals_of
from pws.records.metrics_file import atomic_write_bytes

log = logging.getLogger(__name__)

PREFIX = "preempted_iter_"
LAST_CHECKPOINT = "last_checkpoint"  # mmengine's pointer to the newest checkpoint of a work_dir


def _shield_forked_child() -> None:
    """In a forked child: where ours are installed, the signals as :func:`pws.engine.shield.in_forked_child`
    sets them."""
    handlers = [signal.getsignal(signum) for signum in signals_of(SIGNALS)]
    if any(isinstance(getattr(h, "__self__", None), PreemptionHook) for h in handlers):
        in_forked_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_shield_forked_child)


@HOOKS.register_module(name="PreemptionHook", force=True)
class PreemptionHook(Hook):
    """Checkpoint at the iteration a preemption signal arrived in, then raise :class:`Preempted`."""

    priority = "LOWEST"  # after every other hook of the iteration (EMA, schedulers, records)

    def __init__(self, signals: tuple[str, ...] = SIGNALS) -> None:
        self.signals = signals_of(signals)
        self.signum: int | None = None
        self.evaluating = False  # between before_val_epoch and after_val_epoch of training's evaluations
        self.runner: Any = None
        self._previous: dict[int, Any] = {}
        self._pid = os.getpid()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._pid:  # a forked child that kept our handler: as in_forked_child() says
            in_forked_child()
            if signum == signal.SIGTERM:
                os.kill(os.getpid(), signum)
            return
        if self.signum is not None:  # a second signal: the first one is being acted on
            return
        self.signum = signum
        name = signal.Signals(signum).name
        if self.evaluating:
            log.warning("received %s during an evaluation: abandoned, the resumed run evaluates again", name)
            self._stop(signum, self.runner.epoch - 1, self.runner.iter)
        log.warning("received %s: saving a checkpoint after this iteration", name)

    def hold(self) -> None:
        """Take the signals from now on (the run calls it as it starts, before it writes anything): one that
        arrives before training is acted on as training starts, not left to submitit's handler, which would
        requeue and exit from inside whatever the run was doing (measured: mmengine's config dump, the run
        recorded as failed)."""
        if self._previous:
            return
        if threading.current_thread() is not threading.main_thread():
            log.warning("not in the main thread: preemption signals are not handled")
            return
        self._pid = os.getpid()
        for s in self.signals:
            self._previous[s] = signal.signal(s, self._handle)

    def before_train(self, runner: Any) -> None:
        self.runner = runner
        self.hold()
        signum = self._requested()
        if signum is not None:  # arrived while the run was starting: nothing trained since the checkpoint
            log.warning("received %s before training: stopping before it starts", signal.Signals(signum).name)
            self._stop(signum, runner.epoch, runner.iter)

    def before_val_epoch(self, runner: Any) -> None:
        self.evaluating = True

    def after_val_epoch(self, runner: Any, metrics: dict[str, float] | None = None) -> None:
        self.evaluating = False

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
        self._stop(signum, runner.epoch, runner.iter + 1)

    def _stop(self, signum: int, epoch: int, iteration: int) -> None:
        """Put the handlers back, call the one installed before ours (submitit's requeue), stop."""
        previous = self._previous.get(signum)
        self.restore_handlers()
        if callable(previous) and previous is not signal.default_int_handler:
            previous(signum, None)
        raise Preempted(signum, epoch, iteration)

    def after_train_epoch(self, runner: Any) -> None:
        """Remove the preemption checkpoints of earlier sessions once an epoch checkpoint supersedes them."""
        if not is_main_process():
            return
        pointer = Path(runner.work_dir) / LAST_CHECKPOINT
        newest = pointer.read_text().strip() if pointer.is_file() else ""
        for path in Path(runner.work_dir).glob(f"{PREFIX}*.pth"):
            if str(path) != newest:
                path.unlink(missing_ok=True)
