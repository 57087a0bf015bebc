"""Preemption under a real SLURM: ``reproduce_table.py table4 --grid ci --launcher slurm`` (two cells,
3 epochs of 12 steps, 2 data workers, wandb offline), and ``scancel --signal=USR2 --full`` on each job once
its run has finished an epoch (every process of the job is signalled: the batch shell, submitit, the run,
its data workers, its wandb service). Each run writes its checkpoint and exits 0, submitit requeues the
job, the requeued job resumes, and every cell ends equal to the same cell run locally: its status, metric
and whole history (the PWS cell at the paper's LR may diverge at these few steps: then on both sides)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from .conftest import REPO, Slurm, job_ids, until

GRID = ["table4", "--scale", "smoke", "--grid", "ci", "--override", "scale.classify.epochs=3",
        "--override", "train.max_steps_per_epoch=12", "--override", "data.num_workers=2", "--no-plots"]
CELLS = ("plain/lr0.05/bn", "plain/lr0.05/pws")


def reproduce(root: Path, launcher: str, env: dict[str, str]) -> subprocess.Popen[str]:
    command = [sys.executable, str(REPO / "scripts" / "reproduce_table.py"), *GRID, "--launcher", launcher,
               "--runs", str(root / "runs"), "--out", str(root / "results")]  # fmt: skip
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip


def records(root: Path) -> dict[str, dict]:
    base = root / "runs" / "smoke" / "table4_ci"
    return {cell: json.loads((base / cell / "seed0" / "metrics.json").read_text()) for cell in CELLS}


def trained_an_epoch(run_dir: Path) -> bool:
    try:
        record = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):  # not written yet, or being replaced
        return False
    return record.get("status") == "running" and bool(record.get("history"))


def test_usr2_to_every_process_of_the_jobs_requeues_them_and_the_cells_equal_local_runs(
    slurm: Slurm, tmp_path: Path
) -> None:
    env = slurm.env(WANDB_MODE="offline", OMP_NUM_THREADS="1")
    started = time.monotonic()
    driver = reproduce(tmp_path / "slurm", "slurm", env)
    signalled = []
    try:
        for cell in CELLS:
            sweep = tmp_path / "slurm" / "runs" / "smoke" / "table4_ci" / cell
            until(lambda sweep=sweep: trained_an_epoch(sweep / "seed0"), 300, f"{cell}: an epoch trained")
            (job_id,) = until(lambda sweep=sweep: job_ids(sweep), 60, f"{cell}: its job id")
            slurm.command("scancel", "--signal=USR2", "--full", job_id)
            signalled.append(job_id)
        out, _ = driver.communicate(timeout=600)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, out[-4000:]
    slurm_s = time.monotonic() - started
    for job_id in signalled:
        job = slurm.ended(job_id)
        assert job["JobState"] == "COMPLETED" and int(job["Restarts"]) >= 1, job  # requeued, then done
    on_slurm = records(tmp_path / "slurm")
    local = reproduce(tmp_path / "local", "local", {**env, "WANDB_MODE": "disabled"})
    out, _ = local.communicate(timeout=600)
    assert local.returncode == 0, out[-4000:]
    for cell, record in records(tmp_path / "local").items():
        assert record["status"] in ("finished", "diverged"), record.get("error")  # PWS may diverge here
        assert "interrupted" not in on_slurm[cell] and len(record["history"]) >= 1
        same = ("status", "top1_error", "history")  # as JSON: NaN equals NaN
        assert json.dumps([on_slurm[cell][k] for k in same]) == json.dumps([record[k] for k in same]), cell
    print(f"SLURM grid with preemption: {slurm_s:.0f} s")
