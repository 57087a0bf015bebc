"""kill -9 at random moments, for every app, and one wandb run per run directory across resumes.

The kill loop: the same command is started again after each SIGKILL, at moments drawn from a seeded
generator over the duration of an uninterrupted run (so they fall in the start-up, inside epochs, while a
checkpoint or metrics.json is written, in the evaluation), a bounded number of times; then it runs to the
end. After every kill the run directory is in a state the next start takes over: metrics.json absent or
whole, a lock that names only a killed process. At the end: ``finished``, every epoch once in the
history, no temporary files of interrupted writes, no lock, and the final weights equal to those of the
uninterrupted run (a killed epoch is trained again from the last epoch checkpoint, every epoch reseeded).
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import time
from pathlib import Path

import pytest
import torch

from pws.engine.checkpoints import LAST_CHECKPOINT
from pws.records.wandb_run import RUN_ID_FILE

from .conftest import Case, load_checkpoint, probe, read_json

EPOCHS = {"classify": 12, "detect": 2}
KILLS = {"classify": 5, "detect": 3}
TIMEOUT = 300


def _run(app: Case, args: list[str], kill_after: float | None = None) -> tuple[subprocess.Popen, str, float]:
    """The command as a child; SIGKILLed after ``kill_after`` seconds if still running.
    (process, its stderr, seconds)"""
    started = time.monotonic()
    proc = app.subprocess(args)
    try:
        _, err = proc.communicate(timeout=kill_after if kill_after is not None else TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()  # SIGKILL: no handler runs
        _, err = proc.communicate(timeout=60)
    return proc, err, time.monotonic() - started


def _final_state(run_dir: Path) -> dict[str, torch.Tensor]:
    pointer = Path((run_dir / LAST_CHECKPOINT).read_text().strip())
    return load_checkpoint(pointer)["state_dict"]


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_nothing(app: Case, tmp_path: Path) -> None:
    extra = (f"{app.epochs_key}={EPOCHS[app.name]}",)
    reference_dir = tmp_path / "uninterrupted"
    proc, err, duration = _run(app, app.cli_args(reference_dir, *extra))
    assert proc.returncode == 0, err[-3000:]
    reference = read_json(reference_dir / "metrics.json")

    run_dir = tmp_path / "killed"
    args = app.cli_args(run_dir, *extra)
    rng = random.Random(f"kill-9-{app.name}")
    killed: list[int] = []
    for _ in range(KILLS[app.name]):
        proc, err, _ = _run(app, args, kill_after=rng.uniform(0.05, 0.95) * duration)
        if proc.returncode == 0:  # finished before the moment came: the loop is over
            break
        assert proc.returncode == -9, err[-3000:]  # killed, not failed
        killed.append(proc.pid)
        metrics = run_dir / "metrics.json"
        if metrics.exists():
            # whole (atomic replace), never torn; "finished" when the kill came after the last record
            assert read_json(metrics)["status"] in ("running", "finished")
        lock = run_dir / ".lock"
        if lock.exists() and lock.read_text():
            assert json.loads(lock.read_text())["pid"] in killed  # a dead process's: the next start takes it
    assert len(killed) >= 2, f"only {len(killed)} kills landed before the run finished"

    proc, err, _ = _run(app, args)
    assert proc.returncode == 0, err[-3000:]
    done = read_json(run_dir / "metrics.json")
    assert done["status"] == "finished"
    assert [h["epoch"] for h in done["history"]] == list(range(1, EPOCHS[app.name] + 1))
    metric = [h.get(app.metric) for h in done["history"]]
    assert metric == [h.get(app.metric) for h in reference["history"]], done["history"]
    assert not list(run_dir.glob(".*.tmp")) and not (run_dir / ".lock").exists()
    expected, got = _final_state(reference_dir), _final_state(run_dir)
    assert expected.keys() == got.keys()
    different = [k for k in expected if not torch.equal(expected[k], got[k])]
    assert not different, f"{len(different)} of {len(expected)} tensors differ after {len(killed)} kills"


def test_one_wandb_run_per_run_directory_across_resumes(app: Case, monkeypatch, tmp_path: Path) -> None:
    """A run preempted twice and resumed twice logs into one offline wandb run: the id kept in the run
    directory, every offline run folder under it of that id."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    run_dir = tmp_path / "run"
    extra = ("wandb.mode=offline", f"{app.epochs_key}=2")
    from pws.engine.errors import Preempted

    for at in (1, 2 + app.iters_per_epoch):  # in the first epoch, then in the second
        with pytest.raises(Preempted):
            app.execute(run_dir, *extra, hooks=[probe(f"wandb-{at}", signal_at=at)])
    record = app.execute(run_dir, *extra)
    assert record["status"] == "finished"
    run_id = (run_dir / RUN_ID_FILE).read_text().strip()
    folders = sorted((run_dir / "wandb").glob("offline-run-*"))
    # offline-run-<YYYYmmdd_HHMMSS>-<id>, wandb adding "-1", "-2" when two start within one second
    ids = {re.match(r"offline-run-\d{8}_\d{6}-([0-9a-z]+)", f.name).group(1) for f in folders}  # type: ignore[union-attr]
    assert len(folders) == 3 and ids == {run_id}, folders
