"""Data sets and loaders of a run: a deterministic, resumable, rank-aware order of the training images.

The training order of epoch ``e`` is a permutation drawn from ``seed + e`` alone (as
``DistributedSampler``), padded to a multiple of the world size, and rank ``r`` takes every
``world_size``-th index from ``r``: the ranks together see the same images per step as one process with the
whole batch. :class:`EpochSampler` can start anywhere in an epoch, so a run interrupted mid-epoch resumes
on exactly the batches it had not trained on yet.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from pws.classify.config import Plan
from pws.classify.distributed import DistContext


class EpochSampler(Sampler[int]):
    """Indices of one epoch for one rank: shuffled by ``seed + epoch`` (or in order), from ``start`` on."""

    def __init__(self, size: int, *, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1,
                 pad: bool = True) -> None:  # fmt: skip
        self.size = size
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.pad = pad
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch's order and skip its first ``start`` indices (of this rank)."""
        self.epoch = epoch
        self.start = start

    def epoch_indices(self) -> list[int]:
        """This rank's indices of the current epoch, from the beginning."""
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        if self.pad and self.world_size > 1:
            total = -(-self.size // self.world_size) * self.world_size
            order += order[: total - self.size]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_indices()[self.start :])

    def __len__(self) -> int:
        return max(0, len(self.epoch_indices()) - self.start)


def build_datasets(plan: Plan, ctx: DistContext) -> tuple[Dataset, Dataset, int]:
    """The plan's (train, test, num_classes); rank 0 first, so a generated set is written only once."""
    from pws.data.classification import build_datasets as build

    def make() -> tuple[Dataset, Dataset, int]:
        return build(
            plan.data, plan.data_root, train_augment=plan.augment, download=plan.download, **plan.data_kwargs
        )

    if not ctx.distributed:
        return make()
    result: tuple[Dataset, Dataset, int] | None = None
    error: BaseException | None = None
    if ctx.is_main:
        try:
            result = make()
        except Exception as e:  # noqa: BLE001 - re-raised below, after the other ranks learn of it
            error = e
    failed = ctx.broadcast_object(None if error is None else str(error))
    if error is not None:
        raise error
    if failed is not None:
        raise RuntimeError(f"rank 0 could not build the data sets: {failed}")
    if not ctx.is_main:
        result = make()
    assert result is not None
    return result


def steps_per_epoch(plan: Plan, train_size: int) -> int:
    """Optimizer steps in one epoch (per rank; all ranks take the same number)."""
    per_rank = -(-train_size // plan.world_size) if plan.world_size > 1 else train_size
    steps = per_rank // plan.per_rank_batch if plan.drop_last else -(-per_rank // plan.per_rank_batch)
    if plan.max_steps_per_epoch is not None:
        steps = min(steps, plan.max_steps_per_epoch)
    return steps


def train_loader(plan: Plan, ctx: DistContext, dataset: Dataset, epoch: int, start_step: int) -> DataLoader:
    """The training batches of ``epoch`` from step ``start_step`` on.

    With ``num_workers = 0`` augmentation draws from torch's global generator (saved in checkpoints). The
    loader's own generator (worker seeds) is fixed by (seed, epoch, rank, start_step), so a run never
    depends on how many loaders were created before.
    """
    sampler = EpochSampler(len(dataset), shuffle=True, seed=plan.seed, rank=ctx.rank,  # type: ignore[arg-type]
                           world_size=ctx.world_size)  # fmt: skip
    sampler.set_epoch(epoch, start_step * plan.per_rank_batch)
    generator = torch.Generator()
    generator.manual_seed(_mix(plan.seed, epoch, ctx.rank, start_step))
    return DataLoader(
        dataset,
        batch_size=plan.per_rank_batch,
        sampler=sampler,
        num_workers=plan.num_workers,
        drop_last=plan.drop_last,
        pin_memory=ctx.device.type == "cuda",
        persistent_workers=False,
        generator=generator,
        **_worker_options(plan),
    )


def test_loader(plan: Plan, ctx: DistContext, dataset: Dataset) -> DataLoader:
    """The test set in order, split across ranks without padding (each image counted once)."""
    sampler = EpochSampler(len(dataset), shuffle=False, seed=0, rank=ctx.rank,  # type: ignore[arg-type]
                           world_size=ctx.world_size, pad=False)  # fmt: skip
    return DataLoader(
        dataset,
        batch_size=plan.per_rank_batch,
        sampler=sampler,
        num_workers=plan.num_workers,
        drop_last=False,
        pin_memory=ctx.device.type == "cuda",
        **_worker_options(plan),
    )


def _worker_options(plan: Plan) -> dict[str, Any]:
    return {"prefetch_factor": 4} if plan.num_workers > 0 else {}


def _mix(*values: int) -> int:
    """A 63-bit seed from several integers (splitmix-style), stable across runs and platforms."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h ^= (int(v) + 0x9E3779B97F4A7C15 + (h << 6) + (h >> 2)) & 0xFFFFFFFFFFFFFFFF
        h = (h * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    return h & 0x7FFFFFFFFFFFFFFF


epoch_seed = _mix
