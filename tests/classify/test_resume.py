"""Resumption: an interrupted and resumed CPU run ends with the same numbers as an uninterrupted one."""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path

import pytest
import torch

from pws.classify.preemption import Preempted

from .conftest import REPO, app_subprocess, model_state, read_json, same_number, tiny

# Two epochs of 4 steps, augmentation on (random shifts: the random states must be restored exactly).
RESUMABLE = [*tiny("plain_c", "digits", "pws"), "scale.classify.epochs=2", "train.max_steps_per_epoch=4"]


def _interrupt_at(epoch: int, step: int, signum: int = signal.SIGUSR1):
    """A step callback sending ``signum`` to this process after ``step`` of 0-based ``epoch``."""
    sent = []

    def callback(state) -> None:
        if not sent and state.epoch == epoch and state.step == step:
            sent.append(True)
            os.kill(os.getpid(), signum)

    return callback


def _assert_same_run(a: dict, b: dict) -> None:
    assert a["status"] == b["status"] == "finished"
    assert a["top1_error"] == b["top1_error"]
    assert a["first_step_loss"] == b["first_step_loss"]
    assert len(a["history"]) == len(b["history"])
    for x, y in zip(a["history"], b["history"], strict=True):
        for key in ("epoch", "lr", "train_loss", "train_error", "test_error", "test_loss"):
            assert same_number(x[key], y[key]), (key, x[key], y[key])


@pytest.mark.parametrize(("where", "extra"), [
    ((0, 2), []),                      # mid-epoch: resumes at epoch 1 step 3
    ((0, 4), []),                      # the last step of an epoch: the epoch ends, then it stops
    ((1, 1), ["ema.enabled=true"]),    # second epoch, with the EMA weights in the checkpoint
], ids=["mid-epoch", "epoch-end", "ema"])  # fmt: skip
def test_interrupted_and_resumed_equals_uninterrupted(run_tiny, tmp_path: Path, where, extra) -> None:
    overrides = [*RESUMABLE, *extra]
    straight = run_tiny(overrides, tmp_path / "straight")

    with pytest.raises(Preempted):
        run_tiny(overrides, tmp_path / "resumed", step_callback=_interrupt_at(*where))
    interrupted = read_json(tmp_path / "resumed" / "metrics.json")
    assert interrupted["status"] == "running" and "SIGUSR1" in interrupted["interrupted"]
    assert (tmp_path / "resumed" / "checkpoints" / "last.pt").is_file()
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # the handler was put back

    resumed = run_tiny(overrides, tmp_path / "resumed")
    assert resumed["sessions"] == 2
    _assert_same_run(straight, resumed)
    a, b = model_state(tmp_path / "straight"), model_state(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_sigterm_saves_and_exits_cleanly_then_the_same_command_resumes(tmp_path: Path,
                                                                        data_root: Path) -> None:
    """The app as a subprocess: SIGTERM during training -> checkpoint, exit 0; the same command finishes."""
    args = [f"runs_root={tmp_path}", f"data_root={data_root}", *tiny("plain_c", "digits", "pws"),
            "scale.classify.epochs=40", "train.max_steps_per_epoch=4"]  # fmt: skip
    proc = app_subprocess(args, cwd=REPO)
    deadline = time.monotonic() + 240
    metrics = None
    while time.monotonic() < deadline and proc.poll() is None:  # wait for a finished epoch
        found = list(tmp_path.rglob("metrics.json"))
        if found and read_json(found[0]).get("history"):
            metrics = found[0]
            break
        time.sleep(0.2)
    assert metrics is not None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    stopped = read_json(metrics)
    assert stopped["status"] == "running" and "SIGTERM" in stopped["interrupted"]
    assert 1 <= stopped["epochs_done"] < 40
    assert (metrics.parent / "checkpoints" / "last.pt").is_file()

    proc = app_subprocess(args, cwd=REPO)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    done = read_json(metrics)
    assert done["status"] == "finished" and done["sessions"] == 2
    assert [h["epoch"] for h in done["history"]] == list(range(1, 41))
    assert math.isfinite(done["top1_error"])
