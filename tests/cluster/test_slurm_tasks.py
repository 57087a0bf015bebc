"""Several processes per job on a real SLURM (CPUs: gloo): ``PWS_SLURM_TASKS=2`` makes each job of a
multirun two SLURM tasks, which form one process group from SLURM's variables (:mod:`pws.engine.process`)
and train one run with the total batch split between them.

Classification ends with the weights of the same run in one process (not bitwise: two half-batch gradients
averaged are rounded differently from one whole-batch mean; no augmentation, PWS: nothing else differs).
Detection follows the one-process run's iterations and LRs (each process draws its own augmentation, and
SSD's loss is normalized per process: tests/engine/test_ddp.py). A batch that does not split is refused
before any job is submitted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from detection_stack import require_detection_stack

from pws.classify.app import CLASSIFY as CLASSIFY_APP
from pws.engine.app import App
from pws.engine.compose import compose_config
from pws.engine.lifecycle import execute

from .conftest import Slurm, job_ids

CLASSIFY = ["scale=smoke", "data=digits", "model=plain_c", "norm=pws", "model.width=0.125",
            "data.augment=false", "scale.classify.epochs=1", "train.max_steps_per_epoch=2",
            "data.batch_size=8", "data.test_size=32", "wandb.mode=disabled"]  # fmt: skip
DETECT = ["scale=smoke", "data=synthetic_voc", "data.num_train=4", "data.num_test=2", "data.batch_size=2",
          "scale.detect.epochs=2", "scale.detect.warmup_iters=0", "scale.detect.log_interval=1",
          "wandb.mode=disabled"]  # fmt: skip


def multirun(slurm: Slurm, app: str, overrides: list[str], sweep: Path) -> subprocess.CompletedProcess[str]:
    """``python -m pws.<app> -m overrides`` through the SLURM launcher, two tasks per job."""
    command = [sys.executable, "-m", f"pws.{app}", "-m", *overrides, "hydra/launcher=slurm",
               f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=run"]  # fmt: skip
    return slurm.drive(command, sweep, timeout=300, PWS_SLURM_TASKS="2", OMP_NUM_THREADS="1")


def local(app: App, overrides: list[str], run_dir: Path) -> dict:
    """The same run in this process (one process)."""
    return execute(app, compose_config(app.name, overrides), run_dir, overrides)


def ended_as_two_tasks(slurm: Slurm, sweep: Path, proc: subprocess.CompletedProcess[str]) -> dict:
    """The record of the job's run, once SLURM has the job COMPLETED with two tasks."""
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (job_id,) = set(job_ids(sweep))  # each task's log names the job
    job = slurm.ended(job_id)
    assert job["JobState"] == "COMPLETED" and job["NumTasks"] == "2", job
    record = json.loads((sweep / "run" / "metrics.json").read_text())
    assert record["status"] == "finished"
    return record


def test_a_classification_job_of_two_tasks_ends_with_the_weights_of_one_process(slurm: Slurm, tmp_path: Path
                                                                                ) -> None:  # fmt: skip
    data = [f"data_root={tmp_path / 'data'}", *CLASSIFY]
    sweep = tmp_path / "sweep"
    record = ended_as_two_tasks(slurm, sweep, multirun(slurm, "classify", data, sweep))
    assert (record["processes"], record["batch_per_process"], record["batch_total"]) == (2, 4, 8)
    assert record["bn_batch"] == 4 and record["sync_bn"] is False and record["device_count"] == 2

    single = local(CLASSIFY_APP, data, tmp_path / "single")
    assert (single["processes"], single["batch_per_process"], single["lr"]) == (1, 8, record["lr"])
    assert [h["iter"] for h in record["history"]] == [h["iter"] for h in single["history"]] == [2]
    a = torch.load(sweep / "run" / "epoch_1.pth", map_location="cpu", weights_only=False)["state_dict"]
    b = torch.load(tmp_path / "single" / "epoch_1.pth", map_location="cpu", weights_only=False)["state_dict"]
    assert a.keys() == b.keys()
    for k in b:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)


def test_a_detection_job_of_two_tasks_follows_the_one_process_schedule(slurm: Slurm, tmp_path: Path) -> None:
    require_detection_stack()
    from pws.detect.app import DETECT as DETECT_APP

    data = [f"data_root={tmp_path / 'data'}", *DETECT]
    sweep = tmp_path / "sweep"
    record = ended_as_two_tasks(slurm, sweep, multirun(slurm, "detect", data, sweep))
    assert (record["processes"], record["batch_per_process"], record["batch_total"]) == (2, 1, 2)

    single = local(DETECT_APP, data, tmp_path / "single")

    def steps(r: dict) -> list[tuple]:
        return [(h["epoch"], h["iter"], pytest.approx(h["lr"])) for h in r["history"]]

    assert steps(record) == steps(single) == [(1, 2, record["lr"]), (2, 4, record["lr"] * 0.1)]


def test_a_batch_that_does_not_split_over_the_tasks_is_refused_before_submitting(slurm: Slurm, tmp_path: Path
                                                                                ) -> None:  # fmt: skip
    sweep = tmp_path / "sweep"
    proc = multirun(slurm, "classify", [*CLASSIFY, "data.batch_size=8,9"], sweep)
    assert proc.returncode == 2 and "data.batch_size=9 is the total batch" in proc.stderr, proc.stderr
    assert not (sweep / ".submitit").exists()
