"""The SLURM launcher (configs/hydra/launcher/slurm.yaml, through submitit) on a real scheduler: a tiny
classification multirun is submitted with ``hydra/launcher=slurm``, runs as a SLURM job and ends
``finished`` in its run directory; SLURM knows the job as completed. The scheduler's node has every CPU of
this machine (a job of two tasks needs two)."""

from __future__ import annotations

import json
import os
import sys

from .conftest import Slurm, job_ids

TINY = ["scale=smoke", "data=digits", "model=plain_c", "norm=pws", "model.width=0.125",
        "scale.classify.epochs=1", "train.max_steps_per_epoch=2", "data.batch_size=8", "data.test_size=32"]


def test_a_multirun_through_the_slurm_launcher_runs_as_a_slurm_job(slurm: Slurm, tmp_path) -> None:
    sweep = tmp_path / "sweep"
    command = [sys.executable, "-m", "pws.classify", "-m", *TINY, "seed=0", "hydra/launcher=slurm",
               f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=seed${seed}"]  # fmt: skip
    proc = slurm.drive(command, sweep, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads((sweep / "seed0" / "metrics.json").read_text())
    assert record["status"] == "finished" and 0 <= record["top1_error"] <= 100
    (job_id,) = job_ids(sweep)
    job = slurm.ended(job_id)
    assert job["JobState"] == "COMPLETED" and job["Partition"] == slurm.partition, job


def test_the_node_has_every_cpu_of_this_machine(slurm: Slurm) -> None:
    """The suite runs with OMP_NUM_THREADS=1, which ``nproc`` obeys: a node started from the suite with
    nproc's CPUs has one, and a job of two tasks waits forever (PartitionConfig)."""
    (line,) = slurm.command("sinfo", "-h", "-o", "%c").split()
    assert int(line) == len(os.sched_getaffinity(0)), f"the node has {line} CPUs: restart the scheduler"
