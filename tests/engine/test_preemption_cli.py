"""Preemption as a cluster does it, for every app: SIGTERM to ``python -m pws.<app>`` while it trains ->
checkpoint, metrics.json ``running`` with ``interrupted``, exit 0 (SLURM requeues); the same command then
runs to ``finished`` with every epoch in the history. While the first process trains, a second one on the
same run directory is refused, naming the first."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from pws.engine.checkpoints import LAST_CHECKPOINT
from pws.engine.errors import RunFailed

from .conftest import Case, read_json

EPOCHS = {"classify": 30, "detect": 2}  # classification's epochs take ~0.2 s: enough of them to signal in one
TIMEOUT = 300


def _wait_for_a_finished_epoch(proc, metrics: Path) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if read_json(metrics).get("history"):
                return
        except (OSError, ValueError):  # not written yet, or being replaced
            pass
        time.sleep(0.05)
    out, err = proc.communicate(timeout=60)
    pytest.fail(f"no epoch finished (exit {proc.returncode}):\n{out[-3000:]}\n{err[-3000:]}")


@pytest.mark.slow
def test_sigterm_checkpoints_exits_0_and_the_same_command_resumes(app: Case, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    epochs = EPOCHS[app.name]
    extra = (f"{app.epochs_key}={epochs}",)
    args = app.cli_args(run_dir, *extra)
    proc = app.subprocess(args)
    try:
        _wait_for_a_finished_epoch(proc, run_dir / "metrics.json")
        with pytest.raises(RunFailed, match=f"in use by process {proc.pid} "):
            app.execute(run_dir, *extra)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    assert f"pws.{app.name}: stopped by SIGTERM" in err
    stopped = read_json(run_dir / "metrics.json")
    assert stopped["status"] == "running" and "SIGTERM" in stopped["interrupted"], stopped.get("error")
    done_before = len(stopped["history"])
    assert 1 <= done_before < epochs
    pointer = Path((run_dir / LAST_CHECKPOINT).read_text().strip())
    assert pointer.parent == run_dir and pointer.is_file()
    assert pointer.name.startswith("preempted_iter_") or pointer.name == f"epoch_{done_before}.pth"
    assert not (run_dir / ".lock").exists()

    proc = app.subprocess(args)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    assert f"pws.{app.name}: finished" in out
    done = read_json(run_dir / "metrics.json")
    assert done["status"] == "finished" and "interrupted" not in done
    assert [h["epoch"] for h in done["history"]] == list(range(1, epochs + 1))
    for before, after in zip(stopped["history"], done["history"], strict=False):  # the same rows, but that of
        assert {k: after[k] for k in before} == before  # an epoch whose evaluation the signal abandoned: the
        # resumed run evaluates it first, and its row gains the test metrics
    assert all(app.metric in h for h in done["history"])
    assert done[app.metric] == done["history"][-1][app.metric]
