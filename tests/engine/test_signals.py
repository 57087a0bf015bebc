"""The processes of a run ignore the preemption signals its main process acts on (pws.engine.shield): a
forked worker, a data worker's init and a helper started while shielded (the handlers are put back after a
divergence: test_outcomes; after a preemption: test_resume; the whole process group signalled:
test_signal_group)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from queue import Empty

import pytest

from pws.engine.hooks.preemption import PreemptionHook
from pws.engine.shield import SIGNALS, ignore_notices_after_the_run, shielded, worker_init

# OpenTelemetry's batch processor (which wandb.init sets up) starts a thread in every forked child, from an
# at-fork hook; the tests here set LIBRARY_THREAD_AT_FORK to do the same (registered after the run's own hook,
# as wandb.init comes after the run's imports)
LIBRARY_THREAD_AT_FORK = threading.Event()


def _a_library_thread_at_fork() -> None:
    if LIBRARY_THREAD_AT_FORK.is_set():
        threading.Thread(target=threading.Event().wait, name="library-thread", daemon=True).start()


os.register_at_fork(after_in_child=_a_library_thread_at_fork)


def _report_handlers(queue) -> None:  # in the forked child
    handlers = {name: signal.getsignal(getattr(signal, name)) for name in SIGNALS}
    queue.put((handlers, int(signal.SIGTERM) in _blocked(os.getpid())))


def _forked_child_reports() -> tuple[dict[str, object], bool]:
    context = multiprocessing.get_context("fork")
    queue = context.SimpleQueue()
    child = context.Process(target=_report_handlers, args=(queue,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    return queue.get()


def test_a_forked_worker_ignores_the_usr_signals_and_takes_sigterm_from_its_parent_only() -> None:
    """mmdet's evaluation pool and data workers are forked while the handlers are installed: SLURM's USR1
    and USR2 reach them and are ignored; SIGTERM is blocked for a thread that takes its parent's alone (with
    which ``Pool.terminate`` ends a pool: a worker that ignored it hung the evaluation)."""
    before = {name: signal.getsignal(getattr(signal, name)) for name in SIGNALS}
    assert _forked_child_reports() == (before, False)  # no hook installed: nothing changes
    hook = PreemptionHook()
    hook.hold()
    try:
        assert all(isinstance(getattr(signal.getsignal(getattr(signal, n)), "__self__", None), PreemptionHook)
                   for n in SIGNALS)  # fmt: skip
        handlers, blocked = _forked_child_reports()
        assert handlers == {"SIGTERM": signal.SIG_DFL, "SIGUSR1": signal.SIG_IGN, "SIGUSR2": signal.SIG_IGN}
        assert blocked
    finally:
        hook.restore_handlers()
    assert {name: signal.getsignal(getattr(signal, name)) for name in SIGNALS} == before


def _init_and_report(queue) -> None:  # in the forked child: a data worker
    worker_init(1, 2, 0, 7)
    import numpy as np

    handlers = {name: signal.getsignal(getattr(signal, name)) for name in ("SIGUSR1", "SIGUSR2")}
    threads = sorted(t.name for t in threading.enumerate())
    queue.put((handlers, threads, int(np.random.randint(1 << 30))))
    os.kill(os.getpid(), signal.SIGTERM)  # not from its parent: ignored
    while signal.SIGTERM in signal.sigpending():  # until the waiting thread took it: a second SIGTERM that
        time.sleep(0.001)  # came while it was pending would merge with it, and the parent's would be lost
    queue.put("alive")
    threading.Event().wait()  # until its parent's SIGTERM ends it


def test_a_data_worker_ignores_the_signals_unless_its_parent_sends_sigterm_and_is_seeded_as_mmengine_does(
) -> None:  # fmt: skip
    """A data worker, forked while the run holds the signals (as the loader forks them) with a library's
    thread started at fork (as OpenTelemetry's, once wandb.init ran in that process): SLURM's signals (USR1,
    USR2, SIGTERM) are ignored; the SIGTERM with which the loader's shutdown and multiprocessing's exit end a
    worker ends it (a worker that ignored it hung the interpreter's exit). The run's at-fork hook blocks
    SIGTERM before the library's thread starts: a thread that had not blocked it took SLURM's SIGTERM, and
    the worker died of it."""
    from mmengine.dataset.utils import worker_init_fn

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    hook = PreemptionHook()
    hook.hold()
    LIBRARY_THREAD_AT_FORK.set()
    try:
        child = context.Process(target=_init_and_report, args=(queue,))
        child.start()
    finally:
        LIBRARY_THREAD_AT_FORK.clear()
        hook.restore_handlers()

    def report() -> object:  # what the child put next; a child that ended first fails the test (no wait)
        try:
            return queue.get(timeout=60)
        except Empty:
            child.join(timeout=5)
            pytest.fail(f"the child put nothing within 60 s; its exit code: {child.exitcode}")

    handlers, threads, drawn = report()
    assert handlers == dict.fromkeys(("SIGUSR1", "SIGUSR2"), signal.SIG_IGN)
    assert threads.count("sigterm-from-parent") == 1 and "library-thread" in threads
    assert report() == "alive"
    child.terminate()  # SIGTERM from its parent
    child.join(timeout=60)
    assert child.exitcode == 0
    import numpy as np

    state = np.random.get_state()
    try:
        worker_init_fn(1, 2, 0, 7)
        assert drawn == int(np.random.randint(1 << 30))
    finally:
        np.random.set_state(state)


def _blocked(pid: int) -> set[int]:
    """The signals blocked in process ``pid`` (its /proc status)."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    line = next(ln for ln in status if ln.startswith("SigBlk:"))
    mask = int(line.split()[1], 16)
    return {n for n in range(1, 65) if mask >> (n - 1) & 1}


def test_a_helper_started_while_shielded_starts_with_the_signals_blocked_and_none_is_lost() -> None:
    """wandb's service is started inside ``shielded()``; a signal the main process gets meanwhile is
    delivered when the block ends."""
    seen: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: seen.append(signum))
    try:
        with shielded():
            helper = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                                      stdin=subprocess.PIPE)  # fmt: skip
            signal.raise_signal(signal.SIGUSR1)
            assert seen == []  # held back
        assert seen == [signal.SIGUSR1]
        wanted = {int(getattr(signal, n)) for n in SIGNALS}
        assert wanted <= _blocked(helper.pid)
        helper.communicate(b"", timeout=60)
        assert wanted.isdisjoint(_blocked(os.getpid()))
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_a_slurm_jobs_process_ignores_the_notices_once_its_run_has_ended(monkeypatch: pytest.MonkeyPatch
                                                                         ) -> None:  # fmt: skip
    """After its run, a process of a SLURM job outlives a late notice (USR1/USR2): by their default action
    it died as it exited, and SLURM recorded the job of a finished run as FAILED. Outside SLURM: unchanged."""
    names = ("SIGUSR1", "SIGUSR2")
    before = {name: signal.getsignal(getattr(signal, name)) for name in names}
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    ignore_notices_after_the_run()
    assert {name: signal.getsignal(getattr(signal, name)) for name in names} == before
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    try:
        ignore_notices_after_the_run()
        os.kill(os.getpid(), signal.SIGUSR2)  # by its default action: the end of this process
        assert all(signal.getsignal(getattr(signal, name)) == signal.SIG_IGN for name in names)
    finally:
        for name, handler in before.items():
            signal.signal(getattr(signal, name), handler)
