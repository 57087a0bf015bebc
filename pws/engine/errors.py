"""The outcomes of a run that are not "finished", as exceptions, and the exit code of each.

=====================  ============================================================  =========
exception              meaning                                                        exit code
=====================  ============================================================  =========
:class:`ConfigError`   a value the user set is invalid (reported before any work)      2
:class:`RunFailed`     the run cannot go on for a reason the user can fix (missing     1
                       data, an unreadable checkpoint, a run directory held by
                       another process or not writable); the message says how
:class:`Preempted`     a preemption signal: checkpoint saved, the same command         0
                       resumes (so SLURM requeues the job)
=====================  ============================================================  =========

A diverged run is not an exception to the caller: :class:`Diverged`, raised inside the training loop, is
recorded by the engine (status ``diverged``, metrics NaN) and the app exits 0, so that a sweep goes on.
"""

from __future__ import annotations

import signal


class ConfigError(ValueError):
    """An invalid configuration value; the message names the key and what is allowed."""

    exit_code = 2


class RunFailed(RuntimeError):
    """The run stopped for a reason the user can fix; the message names the file and the way out."""

    exit_code = 1


class Diverged(RuntimeError):
    """Raised when the training loss stops being finite: the run ends with status ``diverged``."""


class Preempted(Exception):
    """The run saved a checkpoint after a preemption signal and stops; the same command resumes it."""

    exit_code = 0

    def __init__(self, signum: int, epoch: int, iteration: int) -> None:
        self.signum = signum
        self.epoch = epoch
        self.iteration = iteration
        super().__init__(
            f"stopped by {signal.Signals(signum).name} in epoch {epoch + 1} after iteration {iteration}: "
            "checkpoint saved; run the same command again to resume"
        )
