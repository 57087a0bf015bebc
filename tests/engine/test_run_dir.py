"""The run directory across invocations, for every app: its lock, an unreadable checkpoint, a finished run
skipped, ``force=true``."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pws.engine.errors import RunFailed
from pws.records.metrics_file import write_metrics

from .conftest import PROBES, Case, probe, read_json, same


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_run_directory_held_by_a_live_process_is_refused(app: Case, monkeypatch, capsys,
                                                           tmp_path: Path) -> None:  # fmt: skip
    """(The SIGTERM test shows the same with a real second training process.)"""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = {"pid": os.getppid(), "host": socket.gethostname()}  # alive: the process that started pytest
    (run_dir / ".lock").write_text(json.dumps(holder))
    with pytest.raises(RunFailed, match=f"in use by process {holder['pid']} on {holder['host']}"):
        app.execute(run_dir)
    code, _, err = app.cli(monkeypatch, capsys, app.cli_args(run_dir))
    assert code == 1 and f"pws.{app.name}: error: run directory {run_dir} is in use by process" in err
    assert json.loads((run_dir / ".lock").read_text()) == holder  # the holder's lock is left alone
    assert not (run_dir / "metrics.json").exists()  # and nothing of its run is overwritten


def test_a_truncated_checkpoint_fails_naming_it_and_force_starts_again(
        app: Case, reference, monkeypatch, capsys, tmp_path: Path) -> None:  # fmt: skip
    """A job killed while writing (or a disk that filled up) leaves a truncated checkpoint and a stale lock:
    the same command fails naming the file; ``force=true`` moves it aside and runs to the end, exactly as
    a fresh run."""
    ref = reference(app)
    run_dir = tmp_path / "run"
    shutil.copytree(ref.run_dir, run_dir)
    write_metrics(run_dir, {**read_json(run_dir / "metrics.json"), "status": "running"})
    checkpoint = run_dir / "epoch_2.pth"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    (run_dir / ".lock").write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}))  # stale

    code, _, err = app.cli(monkeypatch, capsys, app.cli_args(run_dir))
    assert code == 1, err
    assert f"pws.{app.name}: error: cannot read checkpoint {checkpoint}" in err and "force=true" in err
    assert "Traceback" not in err
    record = read_json(run_dir / "metrics.json")
    assert record["status"] == "failed" and str(checkpoint) in record["error"]
    assert not (run_dir / ".lock").exists()  # the stale lock was taken over, then released

    forced = app.execute(run_dir, "force=true", hooks=[probe("forced")])
    assert forced["status"] == "finished"
    assert len(PROBES["forced"]) == 2 * app.iters_per_epoch  # from the start
    assert len((run_dir / "epoch_2.pth.unused-1").read_bytes()) == 1000  # the truncated file, kept aside
    assert (run_dir / "last_checkpoint.unused-1").is_file()
    assert same(forced["history"], ref.record["history"])  # a fresh run is deterministic
    assert same(forced[app.metric], ref.record[app.metric])


def test_a_finished_run_is_skipped_and_force_runs_it_again(app: Case, reference, monkeypatch, capsys,
                                                           tmp_path: Path) -> None:  # fmt: skip
    ref = reference(app)
    run_dir = tmp_path / "run"
    shutil.copytree(ref.run_dir, run_dir)
    before = (run_dir / "metrics.json").read_bytes()
    files = sorted(p.name for p in run_dir.iterdir())

    skipped = app.execute(run_dir, hooks=[probe("skipped")])
    assert PROBES["skipped"] == []  # no training iteration
    assert (run_dir / "metrics.json").read_bytes() == before
    assert sorted(p.name for p in run_dir.iterdir()) == files
    assert same(skipped, read_json(run_dir / "metrics.json"))
    code, out, _ = app.cli(monkeypatch, capsys, app.cli_args(run_dir))  # the command line too
    assert code == 0 and f"pws.{app.name}: finished" in out
    assert (run_dir / "metrics.json").read_bytes() == before

    forced = app.execute(run_dir, "force=true", hooks=[probe("forced")])
    assert forced["status"] == "finished"
    assert len(PROBES["forced"]) == 2 * app.iters_per_epoch
    assert (run_dir / "epoch_2.pth.unused-1").is_file() and (run_dir / "epoch_2.pth").is_file()
    assert same(forced["history"], ref.record["history"])


def test_a_run_directory_that_cannot_be_made_is_one_line_and_exit_1(app: Case, monkeypatch, capsys,
                                                                      tmp_path: Path) -> None:  # fmt: skip
    """Its parent is a file (as a mount that is gone, or a path typed wrong): one line naming the path and
    the cause, exit 1, nothing written anywhere. (Root ignores read-only permissions, so a file stands in
    for a read-only or full file system: the same OSError path.)"""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    run_dir = blocker / "run"
    code, out, err = app.cli(monkeypatch, capsys, app.cli_args(run_dir))
    assert code == 1, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines == [f"pws.{app.name}: error: cannot write to the run directory {run_dir}: "
                     f"{lines[0].rsplit(': ', 1)[-1]}"], err  # fmt: skip
    assert "Not a directory" in lines[0] and "Traceback" not in err + out
    assert blocker.read_text() == "" and list(tmp_path.iterdir()) == [blocker]


def test_temporary_files_of_an_interrupted_write_are_removed_at_the_next_start(app: Case, tmp_path: Path
                                                                                ) -> None:  # fmt: skip
    """A kill during an atomic write leaves ``.<name>.<random>.tmp`` beside the file: the next start of the
    run removes it (and nothing else)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    leftovers = [run_dir / ".metrics.json.k2j4.tmp", run_dir / ".wandb_run_id.x9.tmp"]
    for path in leftovers:
        path.write_bytes(b"{half a rec")
    keep = run_dir / "notes.txt"
    keep.write_text("mine")
    record = app.execute(run_dir, f"{app.epochs_key}=1")
    assert record["status"] == "finished"
    assert not any(p.exists() for p in leftovers) and keep.read_text() == "mine"
