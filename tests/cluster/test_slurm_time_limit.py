"""The time limit under a real SLURM: a job whose limit (2 minutes) is shorter than its run gets the
launcher's signal (``--signal=USR2@signal_delay_s``, from slurmctld, to every process of the job's step),
writes its checkpoint, exits 0 and is requeued by submitit as a timed-out job; the requeued job resumes, is
cut again if need be, and the run ends equal to the same run done locally without a cut (its status,
metric and whole history), which runs meanwhile beside it.

slurmctld checks the limits every 30 s and signals at the first check that finds the job within
``signal_delay_s`` + 30 s of its limit (measured: 57 s into a 2-minute job at 60 s, 87 s into a 3-minute
one at 90 s, 13 s into a 2-minute one at 90 s). At 60 s each start of the job is signalled 30-60 s after
it starts, once its run trains (the run starts in about 12 s; a signal during the start stops the run
before it trains, and a job signalled so at each start would never end), and the run (20 epochs of 44 steps:
about 70 s of training and 12 s of start on an idle CPU, measured; 6 epochs ended before the signal) is
always cut at least once (each start trains about 45 s before its signal: on a CPU three times slower, five
cuts; PWS_SLURM_REQUEUE allows six).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import REPO, Slurm, job_ids

EPOCHS = 20
RUN = ["scale=smoke", "data=digits", "model=plain_c", "norm=pws", "data.augment=false",
       f"scale.classify.epochs={EPOCHS}", "wandb.mode=disabled"]  # fmt: skip
LIMIT = ["hydra.launcher.timeout_min=2", "hydra.launcher.signal_delay_s=60"]


def test_the_time_limits_signal_requeues_the_job_and_the_run_ends_as_if_uncut(slurm: Slurm, tmp_path: Path
                                                                              ) -> None:  # fmt: skip
    sweep = tmp_path / "sweep"
    local_run = [f"data_root={tmp_path / 'local_data'}", *RUN, f"hydra.run.dir={tmp_path / 'local'}"]
    uncut = subprocess.Popen([sys.executable, "-m", "pws.classify", *local_run], cwd=REPO,
                             env=slurm.env(OMP_NUM_THREADS="1"), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        command = [sys.executable, "-m", "pws.classify", "-m", f"data_root={tmp_path / 'data'}", *RUN,
                   "hydra/launcher=slurm", *LIMIT, f"hydra.sweep.dir={sweep}",
                   "hydra.sweep.subdir=run"]  # fmt: skip
        proc = slurm.drive(command, sweep, timeout=480, OMP_NUM_THREADS="1", PWS_SLURM_REQUEUE="6")
        _, local_err = uncut.communicate(timeout=300)
    finally:
        if uncut.poll() is None:
            uncut.kill()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert uncut.returncode == 0, local_err[-3000:]
    (job_id,) = set(job_ids(sweep))
    job = slurm.ended(job_id)
    assert job["JobState"] == "COMPLETED" and int(job["Restarts"]) >= 1, job  # cut by its limit, requeued
    logs = "".join(p.read_text() for p in sweep.glob(f".submitit/{job_id}/*_log.*"))
    assert "received SIGUSR2: saving a checkpoint" in logs and "this job is timed-out" in logs

    on_slurm = json.loads((sweep / "run" / "metrics.json").read_text())
    local = json.loads((tmp_path / "local" / "metrics.json").read_text())
    assert local["status"] == "finished" and len(local["history"]) == EPOCHS
    same = ("status", "top1_error", "history")
    assert json.dumps([on_slurm[k] for k in same]) == json.dumps([local[k] for k in same])
