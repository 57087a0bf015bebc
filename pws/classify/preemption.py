"""Cluster preemption: SIGTERM / SIGUSR1 (and SIGUSR2, submitit's) ask the run to save and stop.

The handler only records the signal. The training loop looks at :attr:`PreemptionGuard.requested` at its
next check (every ``train.log_every`` steps, all ranks together), writes the checkpoint and raises
:class:`Preempted`; the app then exits with status 0, leaving ``metrics.json`` at status ``running``, and
the same command resumes. A handler that was installed before ours (submitit's requeue handler, under
``hydra/launcher=slurm``) is called after the checkpoint is written, so the job is still requeued.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

SIGNALS: tuple[str, ...] = ("SIGTERM", "SIGUSR1", "SIGUSR2")


class Preempted(Exception):
    """The run saved a checkpoint after a preemption signal and stops; the same command resumes it."""

    def __init__(self, signum: int, epoch: int, step: int) -> None:
        self.signum = signum
        self.epoch = epoch
        self.step = step
        name = signal.Signals(signum).name
        super().__init__(
            f"stopped by {name} in epoch {epoch + 1} after step {step}: checkpoint saved; run the same "
            "command again to resume"
        )


class PreemptionGuard:
    """Context manager installing the handlers (main thread only) and restoring the previous ones."""

    def __init__(self, signals: tuple[str, ...] = SIGNALS) -> None:
        self.signals = [getattr(signal, s) for s in signals if hasattr(signal, s)]
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
            log.warning("received %s: saving a checkpoint at the next step", signal.Signals(signum).name)

    def __enter__(self) -> PreemptionGuard:
        if threading.current_thread() is not threading.main_thread():
            log.warning("not in the main thread: preemption signals are not handled")
            return self
        for s in self.signals:
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

    def chain(self) -> None:
        """Call the handler that was installed before ours for the received signal (e.g. submitit's)."""
        if self.signum is None:
            return
        previous = self._previous.get(self.signum)
        if callable(previous) and previous not in (signal.default_int_handler,):
            handler: Callable[[int, FrameType | None], Any] = previous
            handler(self.signum, None)
