"""``reproduce_table.py --detach`` on a real SLURM: the driver submits a cell's job and returns while the job
waits in the queue (held: sbatch's ``--hold``, so that it cannot end first); the same command again shows it
pending and submits nothing; once SLURM has run it, the command shows it finished, submits nothing, and
renders the cell's number."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pws.records.slurm_jobs import JOBS_FILE

from .conftest import REPO, Slurm

CELL = "plain/lr0.05/pws"
GRID = ["table4", "--scale", "smoke", "--grid", "ci", "--cells", CELL, "--override",
        "scale.classify.epochs=1", "--override", "train.max_steps_per_epoch=2", "--no-plots",
        "--launcher", "slurm", "--detach"]  # fmt: skip


HOLD = ["--override", "+hydra.launcher.additional_parameters.hold=true"]  # sbatch --hold


def reproduce(slurm: Slurm, root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(REPO / "scripts" / "reproduce_table.py"), *GRID, *extra,
               "--runs", str(root / "runs"), "--out", str(root / "results")]  # fmt: skip
    return slurm.drive(command, root, timeout=300, OMP_NUM_THREADS="1")


def test_a_detached_driver_submits_returns_and_later_collects(slurm: Slurm, tmp_path: Path) -> None:
    sweep = tmp_path / "runs" / "smoke" / "table4_ci" / CELL
    first = reproduce(slurm, tmp_path, *HOLD)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    job_id = json.loads((sweep / JOBS_FILE).read_text())["0"]["job_id"]
    assert f"seed 0: pending: SLURM job {job_id}" in first.stdout, first.stdout
    assert slurm.job(job_id)["JobState"] == "PENDING"

    again = reproduce(slurm, tmp_path)
    assert again.returncode == 0 and f"seed 0: pending: SLURM job {job_id}" in again.stdout, again.stdout
    assert "submitted" not in again.stdout and "0 runs to do" in again.stdout
    assert json.loads((sweep / JOBS_FILE).read_text())["0"]["job_id"] == job_id  # nothing new submitted

    slurm.command("scontrol", "release", job_id)
    assert slurm.ended(job_id, timeout=240)["JobState"] == "COMPLETED"
    last = reproduce(slurm, tmp_path)
    assert last.returncode == 0 and "0 runs to do" in last.stdout, last.stdout
    record = json.loads((sweep / "seed0" / "metrics.json").read_text())
    assert record["status"] == "finished" and "seed 0: finished" in last.stdout
    rendered = (tmp_path / "results" / "smoke" / "table4_ci.csv").read_text()
    assert f"{record['top1_error']:.2f}" in rendered, rendered
