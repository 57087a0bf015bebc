"""The facts of this process, for every app: who it is among the run's processes, how they join, and how
it trains.

* :func:`current`: rank, local rank and world size, from torchrun's variables (``RANK``, ``LOCAL_RANK``,
  ``WORLD_SIZE``) or, in a task that ``srun`` started (a SLURM job of several tasks: submitit's
  ``tasks_per_node``), from SLURM's (``SLURM_PROCID``, ``SLURM_LOCALID``, ``SLURM_NTASKS``); one process
  without either.
* :func:`join`: several processes form their process group, NCCL on GPUs (one per process, the local
  rank's) and gloo on CPUs: :func:`backend` is the one place that chooses. Under SLURM the rendezvous is
  the first node of the job (``scontrol show hostnames``, as mmengine's ``slurm`` launcher finds it; the
  loopback address when the job has one node) at a port derived from the job id (two jobs on one node never
  share it). On GPUs mmengine's
  ``init_dist("pytorch")`` joins (it selects the local rank's GPU); its ``slurm`` launcher is not used since
  it selects a GPU unconditionally and rendezvouses at one fixed port. :func:`leave` leaves the group.
* :func:`split_batch`: the one rule for the batch of several processes: ``data.batch_size`` is the total
  batch (the paper's), split evenly over the processes; the LR stays the paper's; a batch that does not
  split is refused (:class:`ConfigError`, exit 2). :func:`batch_record` is that rule as metrics.json
  records it.
* :func:`flush_denormals` (how a CPU trains) and :func:`unwritable` (whether this process can write the run
  directory).
"""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pws.engine.errors import ConfigError

PORT_BASE = 20000  # a SLURM job's rendezvous port: PORT_BASE + job id modulo PORT_SPAN
PORT_SPAN = 20000


@dataclass(frozen=True)
class Process:
    """This process among the run's: ``launcher`` is ``torchrun``, ``slurm`` or ``none`` (one process)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    launcher: str = "none"

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes the record, the checkpoints and Hydra's files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def current(env: Mapping[str, str] | None = None) -> Process:
    """This process (see the module), from ``env`` (default: the environment)."""
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:
        return Process(int(env["RANK"]), int(env.get("LOCAL_RANK", "0")), int(env["WORLD_SIZE"]), "torchrun")
    if "SLURM_PROCID" in env and "SLURM_STEP_ID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        return Process(int(env["SLURM_PROCID"]), int(env.get("SLURM_LOCALID", "0")), int(env["SLURM_NTASKS"]),
                       "slurm")  # fmt: skip
    return Process()


def backend() -> str:
    """The process group's backend: NCCL where torch sees a GPU, else gloo."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def rendezvous(env: Mapping[str, str]) -> dict[str, str]:
    """``MASTER_ADDR`` and ``MASTER_PORT`` of a SLURM job's processes (those already set are kept): the
    job's first node (the loopback address in a job of one node: no name to resolve) and a port derived
    from its id."""
    found = {k: env[k] for k in ("MASTER_ADDR", "MASTER_PORT") if k in env}
    if "MASTER_ADDR" not in found and env.get("SLURM_JOB_NUM_NODES") == "1":
        found["MASTER_ADDR"] = "127.0.0.1"
    elif "MASTER_ADDR" not in found:
        command = ["scontrol", "show", "hostnames", env["SLURM_JOB_NODELIST"]]
        nodes = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
        found["MASTER_ADDR"] = nodes[0]
    found.setdefault("MASTER_PORT", str(PORT_BASE + int(env["SLURM_JOB_ID"]) % PORT_SPAN))
    return found


def join(process: Process) -> dict[str, Any]:
    """Join the process group of ``process`` (nothing for one process); return the Runner's keys for it
    (its launcher, the backend, and on CPUs a DDP wrapper without device ids)."""
    import torch.distributed as dist

    if not process.distributed:
        return {"launcher": "none"}
    if process.launcher == "slurm":
        os.environ.update(rendezvous(os.environ), RANK=str(process.rank), LOCAL_RANK=str(process.local_rank),
                          WORLD_SIZE=str(process.world_size))  # fmt: skip
    keys: dict[str, Any] = {"launcher": "pytorch", "env_cfg": {"dist_cfg": {"backend": backend()}}}
    if not dist.is_initialized() and backend() == "nccl":
        from mmengine.dist import init_dist

        init_dist("pytorch", backend="nccl")
    elif not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    if backend() == "gloo":  # mmengine's wrapper would place the model on a CUDA device
        keys["model_wrapper_cfg"] = dict(type="MMDistributedDataParallel", broadcast_buffers=False,
                                         device_ids=None)  # fmt: skip
    return keys


def leave(finished: bool = False) -> None:
    """Leave the process group before the interpreter exits (a gloo group left to the interpreter's
    shutdown aborts a rank: "terminate called without an active exception", exit -6). What still holds the
    group is collected first (the ended Runner's DDP wrapper, in a reference cycle, would be collected at the
    exit, after the group: the likely cause of a finished torchrun rank's rare abort); after a ``finished``
    run the processes wait for each other, so that none leaves while another still talks to it."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        gc.collect()
        if finished:
            dist.barrier()
        dist.destroy_process_group()


def tasks_per_node(tasks: str | int | None, gpus: str | int | None) -> int:
    """A SLURM job's processes per node: ``tasks`` (``PWS_SLURM_TASKS``) when given, else one per GPU of
    the node (``gpus``), and one without GPUs."""
    if tasks not in (None, ""):
        return int(tasks)  # type: ignore[arg-type]
    return max(1, int(gpus or 0))


def job_processes(launcher: Mapping[str, Any]) -> int:
    """The processes of one job of a Hydra launcher's config: tasks per node x nodes (submitit's keys;
    one for a launcher without them)."""
    return int(launcher.get("tasks_per_node") or 1) * int(launcher.get("nodes") or 1)


def batch_problem(total: int, processes: int, key: str = "data.batch_size") -> str | None:
    """Why a total batch ``total`` cannot be split over ``processes`` (None: it splits evenly)."""
    if total % processes == 0:
        return None
    return (f"{key}={total} is the total batch (the paper's), split evenly over the run's {processes} "
            f"processes; it does not split: give a batch divisible by {processes} or another number of "
            "processes (PWS_SLURM_TASKS, torchrun's --nproc_per_node)")  # fmt: skip


def split_batch(total: int, processes: int) -> int:
    """The per-process batch of a total batch ``total`` over ``processes`` (see the module); a batch that
    does not split raises :class:`ConfigError`."""
    if (problem := batch_problem(total, processes)) is not None:
        raise ConfigError(problem)
    return total // processes


def batch_record(total: int, processes: int, lr: float, sync_bn: bool) -> dict[str, Any]:
    """The batch rule as metrics.json records it: the processes, the per-process and total batch, the LR,
    and the batch BN normalizes over (per process, or the total with SyncBN)."""
    per_process = split_batch(total, processes)
    return {"processes": processes, "batch_per_process": per_process, "batch_total": total, "lr": lr,
            "sync_bn": sync_bn, "bn_batch": total if sync_bn else per_process}  # fmt: skip


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Denormal floats flushed to zero while the run trains on a CPU, and the default put back after.

    Activations and gradients of nets without output norms get tiny; a CPU computes with denormal floats
    orders of magnitude slower. (No effect on a GPU, which flushes them in its own kernels' settings.)
    """
    flushed = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if flushed:
            torch.set_flush_denormal(False)


def unwritable(run_dir: Path) -> str | None:
    """Create ``run_dir`` and try to write a file there: None if that works, else why not (naming it)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{os.getpid()}.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        return f"cannot write to the run directory {run_dir}: {e.strerror or e}"
    return None
