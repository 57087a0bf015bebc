"""The training loop of every run: mmengine's epoch loop, made exactly resumable mid-epoch.

mmengine's ``EpochBasedTrainLoop`` resumes at the start of the epoch a checkpoint was taken in. This loop
(registered as ``ExactResumeEpochLoop``) makes a run that was stopped at any iteration and resumed end
with the same weights and metrics as one that never stopped (on a CPU, same seed):

* every epoch starts from random states derived from (seed, epoch, rank), so no epoch depends on how
  many processes ran the ones before it;
* the image order is the sampler's (mmengine's ``DefaultSampler``: seed + epoch);
* a run resumed after ``k`` iterations of an epoch draws and discards the first ``k`` batches (the data
  workers and the augmentation consume their random numbers exactly as the first time), then takes back
  the random states the checkpoint saved (:class:`pws.engine.hooks.checkpoint_rng.RandomStateHook`), so the
  training steps after it (mmdet's random samplers, dropout) draw what they drew before; a run resumed at
  an epoch's start (from ``epoch_<N>.pth``, after a kill -9) starts it from the epoch's seed alone.

Under DDP each rank reseeds from its own (seed, epoch, rank); the checkpoint (written by rank 0) holds
rank 0's states, which only rank 0 takes back.
"""

from __future__ import annotations

import logging
from typing import Any

from mmengine.dist import get_rank
from mmengine.logging import print_log
from mmengine.registry import LOOPS
from mmengine.runner import EpochBasedTrainLoop, set_random_seed

from pws.engine.random_state import set_random_state

SEED_MODULUS = 2**32


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of every random generator at the start of 0-based ``epoch`` on ``rank``."""
    return (seed * 1_000_003 + epoch * 10_007 + rank) % SEED_MODULUS


@LOOPS.register_module(name="ExactResumeEpochLoop", force=True)
class ExactResumeEpochLoop(EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` with per-epoch seeds and an exact mid-epoch resume (see the module)."""

    def __init__(self, runner: Any, dataloader: Any, max_epochs: int, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(runner, dataloader, max_epochs, **kwargs)
        self.seed = seed
        self.pending_random_state: dict[str, Any] | None = None  # set by RandomStateHook on resume

    @property
    def iters_per_epoch(self) -> int:
        return len(self.dataloader)

    def evaluates_after(self, epochs: int) -> bool:
        """Whether ``run`` evaluates after the first ``epochs`` epochs (mmengine's condition, in one place for
        the hooks that need it: a resumed run evaluates an epoch whose evaluation was cut short)."""
        return (
            self.runner.val_loop is not None
            and epochs >= self.val_begin
            and (epochs % self.val_interval == 0 or epochs == self._max_epochs)
        )

    def run_epoch(self) -> None:
        """One epoch; after a mid-epoch resume, the iterations already done are skipped exactly."""
        done = max(0, self._iter - self._epoch * self.iters_per_epoch)
        set_random_seed(epoch_seed(self.seed, self._epoch, get_rank()))
        self.runner.call_hook("before_train_epoch")
        self.runner.model.train()
        batches = iter(self.dataloader)
        if done:
            print_log(
                f"resuming epoch {self._epoch + 1} after iteration {done}: skipping its first {done} batches",
                logger="current",
                level=logging.INFO,
            )
            for _ in range(done):
                next(batches)
        if self.pending_random_state is not None:
            # Mid-epoch only: a run resumed at an epoch's start (from epoch_N.pth) starts it from the epoch's
            # seed, as the run that never stopped did; the states saved at the end of the epoch before
            # (after its evaluation drew from them) would replace that seed.
            if done and get_rank() == 0:
                set_random_state(self.pending_random_state)
            self.pending_random_state = None
        for idx, data_batch in enumerate(batches, start=done):
            self.run_iter(idx, data_batch)
        self.runner.call_hook("after_train_epoch")
        self._epoch += 1
