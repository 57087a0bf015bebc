"""Process set-up for one or many processes: torchrun -> DistributedDataParallel, else a single process.

Under ``torchrun --nproc_per_node N -m pws.classify ...`` (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` in the
environment) each process joins the process group (``nccl`` on GPU, ``gloo`` on CPU), takes GPU
``LOCAL_RANK`` when training on CUDA, and trains on ``batch_size / N`` images per step; rank 0 alone writes
files (metrics, checkpoints, config, wandb). Without torchrun everything here is a no-op on one process.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    """Rank, world size and the device of this process."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum ``values`` (a tensor on this process's device) over all ranks, in place; returns it."""
        if self.distributed:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def broadcast_object(self, obj: Any) -> Any:
        """``obj`` of rank 0 on every rank."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather_objects(self, obj: Any) -> list[Any]:
        """``[obj of rank 0, obj of rank 1, ...]`` on every rank."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


def setup(device: str) -> DistContext:
    """Join torchrun's process group if there is one, and pick this process's device.

    ``device`` is the plan's (``cpu``, ``cuda`` or ``cuda:N``); under torchrun ``cuda`` means GPU
    ``LOCAL_RANK``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext(device=torch.device(device))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if device.startswith("cuda"):
        torch_device = torch.device("cuda", local_rank)
        torch.cuda.set_device(torch_device)
        backend = "nccl"
    else:
        torch_device = torch.device("cpu")
        backend = "gloo"
    if not dist.is_initialized():
        kwargs: dict[str, Any] = {"backend": backend, "timeout": datetime.timedelta(minutes=30)}
        if backend == "nccl":
            kwargs["device_id"] = torch_device
        dist.init_process_group(**kwargs)
    return DistContext(rank, local_rank, world_size, torch_device, backend)


def teardown(ctx: DistContext) -> None:
    """Leave the process group (torchrun's processes then exit cleanly)."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def rank_from_env() -> int:
    """This process's rank under torchrun (0 without it), known before any set-up."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0
