"""The preemption handlers are never inherited by forked workers (the handlers are put back after a
divergence: test_outcomes; after a preemption: test_resume)."""

from __future__ import annotations

import multiprocessing
import signal

from pws.engine.hooks.preemption import SIGNALS, PreemptionHook


def _report_handlers(queue) -> None:  # in the forked child
    queue.put([signal.getsignal(getattr(signal, name)) == signal.SIG_DFL for name in SIGNALS])


def test_a_forked_worker_starts_with_the_default_handlers() -> None:
    """mmdet's evaluation pool and data workers are forked while the handlers are installed; with ours
    inherited, ``Pool.terminate`` could leave a worker alive and the evaluation hung. A child starts with
    the default action, so the pool's SIGTERM ends it."""
    before = {name: signal.getsignal(getattr(signal, name)) for name in SIGNALS}
    hook = PreemptionHook()
    hook.before_train(None)
    try:
        assert all(isinstance(getattr(signal.getsignal(getattr(signal, n)), "__self__", None), PreemptionHook)
                   for n in SIGNALS)  # fmt: skip
        context = multiprocessing.get_context("fork")
        queue = context.SimpleQueue()
        child = context.Process(target=_report_handlers, args=(queue,))
        child.start()
        child.join(timeout=60)
        assert child.exitcode == 0
        assert queue.get() == [True] * len(SIGNALS)
    finally:
        hook.after_train(None)
    assert {name: signal.getsignal(getattr(signal, name)) for name in SIGNALS} == before

