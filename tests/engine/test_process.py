"""The process facts (:mod:`pws.engine.process`): who a process is under torchrun, under SLURM and alone;
where the processes of a SLURM job meet; how many a job starts; the one batch rule, its record, and its
refusal before a multirun submits anything."""

from __future__ import annotations

import pytest

from pws.engine.cli import unsplit_batch
from pws.engine.compose import compose_config
from pws.engine.errors import ConfigError
from pws.engine.process import (
    PORT_BASE,
    Process,
    backend,
    batch_record,
    current,
    job_processes,
    rendezvous,
    split_batch,
    tasks_per_node,
    unwritable,
)

SLURM_TASK = {"SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_NTASKS": "4", "SLURM_STEP_ID": "0",
              "SLURM_JOB_ID": "123457", "SLURM_JOB_NODELIST": "gpu01"}  # fmt: skip


def test_torchruns_variables_name_the_process() -> None:
    assert current({"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"}) == Process(1, 1, 2, "torchrun")


def test_a_task_that_srun_started_is_a_rank_of_the_jobs_processes() -> None:
    process = current(SLURM_TASK)
    assert process == Process(3, 1, 4, "slurm") and process.distributed and not process.is_main


def test_one_process_alone_in_a_job_or_outside_one() -> None:
    assert current({}) == Process() == Process(0, 0, 1, "none")
    assert current({**SLURM_TASK, "SLURM_NTASKS": "1"}) == Process()
    batch_shell = {k: v for k, v in SLURM_TASK.items() if k != "SLURM_STEP_ID"}  # not a task of a step
    assert current(batch_shell) == Process()
    # torchrun inside a SLURM job: torchrun's ranks
    assert current({**SLURM_TASK, "RANK": "0", "WORLD_SIZE": "2"}).launcher == "torchrun"


def test_a_slurm_jobs_processes_meet_on_its_first_node_at_a_port_of_its_own() -> None:
    given = {"MASTER_ADDR": "gpu01", **SLURM_TASK}
    first, second = rendezvous(given), rendezvous({**given, "SLURM_JOB_ID": "123458"})
    assert first == {"MASTER_ADDR": "gpu01", "MASTER_PORT": str(PORT_BASE + 3457)}
    assert second["MASTER_PORT"] == str(PORT_BASE + 3458)
    assert rendezvous({**given, "MASTER_PORT": "29400"})["MASTER_PORT"] == "29400"
    one_node = {**SLURM_TASK, "SLURM_JOB_NUM_NODES": "1"}  # no scontrol: its processes meet on loopback
    assert rendezvous(one_node) == {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(PORT_BASE + 3457)}


def test_the_backend_is_nccl_on_gpus_and_gloo_on_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert backend() == "gloo"
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    assert backend() == "nccl"


def test_the_total_batch_is_split_and_one_that_does_not_split_is_refused() -> None:
    assert split_batch(128, 8) == 16
    with pytest.raises(ConfigError, match=r"data.batch_size=10 is the total batch.* 3 processes") as e:
        split_batch(10, 3)
    assert e.value.exit_code == 2


def test_the_record_states_the_rule() -> None:
    assert batch_record(64, 4, 0.1, sync_bn=False) == {
        "processes": 4, "batch_per_process": 16, "batch_total": 64, "lr": 0.1, "sync_bn": False,
        "bn_batch": 16}  # fmt: skip
    assert batch_record(64, 4, 0.1, sync_bn=True)["bn_batch"] == 64


def test_an_unwritable_run_directory_is_named(tmp_path) -> None:
    assert unwritable(tmp_path / "run") is None and (tmp_path / "run").is_dir()
    (tmp_path / "file").write_text("")
    assert "cannot write to the run directory" in str(unwritable(tmp_path / "file" / "run"))


def test_a_slurm_job_runs_a_process_per_gpu_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (tasks_per_node(None, 4), tasks_per_node(None, 0), tasks_per_node("2", 4)) == (4, 1, 2)
    monkeypatch.setenv("PWS_SLURM_GPUS", "4")
    launcher = compose_config("classify", ["hydra/launcher=slurm"], with_hydra=True).hydra.launcher
    assert launcher.tasks_per_node == 4 and job_processes(launcher) == 4
    monkeypatch.setenv("PWS_SLURM_TASKS", "2")
    two_nodes = ["hydra/launcher=slurm", "hydra.launcher.nodes=2"]
    assert job_processes(compose_config("classify", two_nodes, with_hydra=True).hydra.launcher) == 4


def test_a_multirun_whose_batch_does_not_split_over_a_jobs_processes_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("PWS_SLURM_TASKS", "2")
    argv = ["-m", "data=digits", "data.batch_size=8,9", "seed=0,1", "hydra/launcher=slurm"]
    assert "data.batch_size=9 is the total batch" in str(unsplit_batch("classify", argv))
    splits = ["-m", "data=digits", "data.batch_size=8,6", "hydra/launcher=slurm"]
    assert unsplit_batch("classify", splits) is None
    assert unsplit_batch("classify", [a for a in argv if a != "-m"]) is None  # one run: its own check
