"""A run's other processes ignore the preemption signals: its main process alone acts on them.

SLURM delivers a preemption signal to every process of a job (``scancel --signal=USR2 --full``, submitit's
USR2 before the time limit, the SIGTERM of a preemption or a requeue), ``os.killpg`` to every process of a
group. A data worker ended by it broke the loader inside the checkpoint save, and the run failed instead of
stopping. Here, while :class:`~pws.engine.hooks.PreemptionHook` holds the signals:

* every process the run forks (data workers, mmdet's evaluation pool) ignores SIGUSR1 and SIGUSR2 from its
  start, and ends on SIGTERM only when its parent sends it (:func:`in_forked_child`,
  :func:`sigterm_from_parent_only`: ``Pool.terminate``, the loader's shutdown and multiprocessing's exit end
  their workers with it; a worker that ignored it hung the evaluation or the interpreter's exit). This is
  set by an at-fork hook, before any thread that another library starts in the child: OpenTelemetry's batch
  processor, which ``wandb.init`` sets up, starts one at every fork, and a thread that did not block SIGTERM
  took SLURM's and the worker died of it. (At-fork hooks run in the order they were registered: the run's
  is registered by :mod:`pws.engine.hooks.preemption`, which the engine imports before wandb starts);
* a data worker (:func:`worker_init`, the ``worker_init_fn`` of every loader of the run,
  :func:`shield_loaders`) does the same (also where it was forked outside a run);
* a helper process started inside :func:`shielded` (wandb's service) starts with the preemption signals
  blocked. Measured with wandb-core (a Go program): it keeps SIGUSR1 and SIGUSR2 blocked, but the Go
  runtime unblocks SIGTERM and exits on it whatever it inherited, blocked or ignored; after SLURM's SIGTERM
  the run goes on without wandb (:class:`~pws.engine.hooks.WandbHook`).

Once the run has ended, a process in a SLURM job ignores SIGUSR1 and SIGUSR2
(:func:`ignore_notices_after_the_run`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

from mmengine.dataset.utils import worker_init_fn as mmengine_worker_init
from mmengine.registry import FUNCTIONS

SIGNALS: tuple[str, ...] = ("SIGTERM", "SIGUSR1", "SIGUSR2")  # the preemption signals
IGNORED_BY_CHILDREN: tuple[str, ...] = ("SIGUSR1", "SIGUSR2")  # by every forked process (not SIGTERM)
LOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")
WORKER_INIT = "pws_shielded_worker_init"  # no dot: mmengine reads "a.b" as scope a
_WAITING: set[int] = set()  # the processes whose SIGTERM waiter runs (a forked child inherits the set)


def signals_of(names: tuple[str, ...]) -> list[signal.Signals]:
    """The signals of ``names`` this platform has."""
    return [getattr(signal, n) for n in names if hasattr(signal, n)]


def ignore(names: tuple[str, ...]) -> None:
    """Ignore the signals ``names`` in this process (its main thread)."""
    for signum in signals_of(names):
        with contextlib.suppress(ValueError):  # not the main thread: nothing to do there
            signal.signal(signum, signal.SIG_IGN)


def in_forked_child() -> None:
    """In a process forked while the run holds the signals: SIGUSR1 and SIGUSR2 ignored, SIGTERM from the
    parent only."""
    ignore(IGNORED_BY_CHILDREN)
    sigterm_from_parent_only()


def sigterm_from_parent_only() -> None:
    """SIGTERM ends this process when its parent sends it and is ignored from anyone else (SLURM, a
    ``killpg``): it is blocked (in this thread and the threads it starts), and a thread takes it with
    ``sigwaitinfo``, which names the sender. Once per process."""
    if os.getpid() in _WAITING:
        return
    _WAITING.add(os.getpid())
    parent = os.getppid()
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
    # an ignored SIGTERM (inherited SIG_IGN) is discarded, never queued for sigwaitinfo: blocked, the
    # default action cannot end the process, and the thread below takes it
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def wait() -> None:
        while signal.sigwaitinfo([signal.SIGTERM]).si_pid != parent:
            pass
        os._exit(0)  # as torch's own handler of a worker does on its parent's SIGTERM

    threading.Thread(target=wait, name="sigterm-from-parent", daemon=True).start()


@FUNCTIONS.register_module(name=WORKER_INIT, force=True)
def worker_init(worker_id: int, num_workers: int, rank: int, seed: int) -> None:
    """A data worker's ``worker_init_fn``: SIGUSR1 and SIGUSR2 ignored, SIGTERM from the parent only, then
    mmengine's seeding (the default it replaces, with the same arguments)."""
    ignore(IGNORED_BY_CHILDREN)
    sigterm_from_parent_only()
    mmengine_worker_init(worker_id, num_workers, rank, seed)


def shield_loaders(mm: dict[str, Any], rank: int, seed: int) -> None:
    """Give every loader of the mmengine config ``mm`` that has workers :func:`worker_init`."""
    for name in LOADERS:
        loader = mm.get(name)
        if isinstance(loader, dict) and loader.get("num_workers", 0) > 0:
            init = dict(type=WORKER_INIT, num_workers=loader["num_workers"], rank=rank, seed=seed)
            mm[name] = {**loader, "worker_init_fn": init}


def ignore_notices_after_the_run() -> None:
    """In a SLURM job, once its run has ended: SIGUSR1 and SIGUSR2 (the launcher's notice before the time
    limit, ``scancel --signal``) ignored for the rest of the process. Nothing is left to save, and a notice
    that came as the process exits ended it by the signal's default action: SLURM recorded the job of a
    finished run as FAILED (measured: a time-limit notice 4 s after submitit wrote the result)."""
    if "SLURM_JOB_ID" in os.environ:
        ignore(IGNORED_BY_CHILDREN)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """The preemption signals blocked in this thread while the block runs: a process started inside
    inherits the mask; a signal that arrives meanwhile waits and is delivered after the block."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals_of(SIGNALS))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
