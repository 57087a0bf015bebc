"""The training loop: epochs of SGD steps, a step LR schedule, evaluation, and exact resumption.

Determinism (what makes an interrupted and resumed CPU run end with the same numbers as an uninterrupted
one): every epoch starts by seeding torch/numpy/python from (seed, epoch, rank) and draws its image order
from (seed, epoch) alone (:mod:`pws.classify.data`); the loop stops only at its check points (every
``train.log_every`` steps), where the running sums are reduced across ranks into plain numbers, so the
checkpoint taken there holds the model, optimizer, sums and random states of exactly that point; a resumed
run rebuilds the epoch's order, skips the steps already done and restores the random states.

A non-finite training loss (seen at the next check point) raises :class:`pws.runs.record.Diverged`.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from pws.classify import checkpoint as ckpt
from pws.classify.config import Plan
from pws.classify.data import epoch_seed, steps_per_epoch, test_loader, train_loader
from pws.classify.distributed import DistContext
from pws.classify.ema import EMA
from pws.classify.evaluate import evaluate
from pws.classify.preemption import Preempted, PreemptionGuard
from pws.classify.progress import Progress
from pws.nn.pws_conv import PWSConv2d
from pws.runs.record import check_finite

log = logging.getLogger("pws.classify")

WARMUP_STEPS = 2  # steps at the start of each epoch left out of the throughput (loader start-up, warm-up)


@dataclass
class TrainState:
    """Where training stands; everything here is saved in the checkpoint (as plain values)."""

    epoch: int = 0  # completed epochs
    step: int = 0  # steps done in the current epoch
    loss_sum: float = 0.0  # current epoch so far, summed over all ranks
    correct: float = 0.0
    seen: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    train_images: int = 0  # images and seconds of the throughput windows (all epochs, all sessions)
    train_seconds: float = 0.0
    wall_time_s: float = 0.0  # earlier sessions
    first_step_loss: float | None = None
    sessions: int = 0
    last_eval: dict[str, float] | None = None


class Trainer:
    """Trains ``model`` as ``plan`` says; rank 0 saves through ``save_checkpoint`` and ``on_epoch``."""

    def __init__(
        self,
        plan: Plan,
        ctx: DistContext,
        model: nn.Module,
        train_set: Dataset,
        test_set: Dataset,
        *,
        guard: PreemptionGuard,
        progress: Progress,
        save_checkpoint: Callable[[dict[str, Any]], None],
        on_epoch: Callable[[TrainState], None],
        step_callback: Callable[[TrainState], None] | None = None,
    ) -> None:
        self.plan = plan
        self.ctx = ctx
        self.model = model  # unwrapped
        self.train_set = train_set
        self.test_set = test_set
        self.guard = guard
        self.progress = progress
        self.save_checkpoint = save_checkpoint
        self.on_epoch = on_epoch
        self.step_callback = step_callback
        self.state = TrainState()
        self.steps = steps_per_epoch(plan, len(train_set))  # type: ignore[arg-type]
        if self.steps < 1:
            raise ValueError(
                f"the training set ({len(train_set)} images) is smaller than one batch per rank "  # type: ignore[arg-type]
                f"({plan.per_rank_batch}): lower data.batch_size"
            )
        from pws.optim import param_groups

        self.optimizer = torch.optim.SGD(
            param_groups(model, plan.weight_decay), lr=plan.lr, momentum=plan.momentum, nesterov=plan.nesterov
        )
        amp_on = plan.amp and ctx.device.type == "cuda"
        self.amp_dtype = getattr(torch, plan.amp_dtype) if amp_on else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp_on and plan.amp_dtype == "float16")
        self.ema: EMA | None = None
        self.ddp: nn.Module = model
        self._stop_after_epoch = False  # a preemption request seen at the last step of an epoch
        self._epoch_timer = (time.perf_counter(), 0, 0.0)  # epoch start, images timed, seconds timed

    # ---------------------------------------------------------------------------------------------- set-up

    def restore(self, state: dict[str, Any] | None) -> None:
        """Load a checkpoint (or nothing), initialize alpha from data if asked, then wrap for DDP and EMA."""
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scaler.load_state_dict(state["scaler"])
            self.state = TrainState(**state["train_state"])
        else:
            self._init_alpha_from_data()
        if self.plan.ema_decay is not None:
            self.ema = EMA(self.model, self.plan.ema_decay, self.plan.ema_warmup)
            if state is not None and state.get("ema") is not None:
                self.ema.load_state_dict(state["ema"])
        if self.ctx.distributed:
            device_ids = [self.ctx.device.index] if self.ctx.device.type == "cuda" else None
            self.ddp = nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)
        if state is not None and self.state.step > 0:
            rngs = state["rng"]
            if len(rngs) == self.ctx.world_size:
                ckpt.set_rng_state(rngs[self.ctx.rank])
            else:
                log.warning("checkpoint from %d processes, now %d: the current epoch restarts from its start",
                            len(rngs), self.ctx.world_size)  # fmt: skip
                self._reset_epoch()
        self.state.sessions += 1

    def _reset_epoch(self) -> None:
        s = self.state
        s.step, s.loss_sum, s.correct, s.seen = 0, 0.0, 0.0, 0.0

    def _init_alpha_from_data(self) -> None:
        """norm.alpha_init=data: set every PWS alpha from the first training batch, before DDP.

        The forward runs on the batch epoch 1 starts with, with the random states put back afterwards, so
        training then sees exactly that batch first (as the authors' first training forward did); under
        DDP, rank 0's alphas are broadcast to every rank when the model is wrapped.
        """
        pending = [m for m in self.model.modules() if isinstance(m, PWSConv2d) and m.alpha_init == "data"
                   and not bool(m.alpha_initialized)]  # fmt: skip
        if not pending:
            return
        saved = ckpt.rng_state()
        try:
            ckpt.seed_everything(epoch_seed(self.plan.seed, 0, self.ctx.rank))
            images, _ = next(iter(train_loader(self.plan, self.ctx, self.train_set, 0, 0)))
            images = self._to_device(images)
            self.model.train()
            with torch.no_grad(), self._autocast():
                self.model(images)
        finally:
            ckpt.set_rng_state(saved)
        log.info("alpha initialized from data in %d PWS convs", len(pending))

    # ------------------------------------------------------------------------------------------ training

    def fit(self) -> TrainState:
        """Train the remaining epochs; returns the final state (raises Diverged or Preempted)."""
        plan, s = self.plan, self.state
        while s.epoch < plan.epochs:
            self._train_epoch(s.epoch)
            evaluated = (s.epoch + 1) % plan.eval_every == 0 or s.epoch + 1 == plan.epochs
            test = self._evaluate() if evaluated else None
            self._end_epoch(test)
        return s

    def _train_epoch(self, epoch: int) -> None:
        plan, ctx, s = self.plan, self.ctx, self.state
        if s.step == 0:
            ckpt.seed_everything(epoch_seed(plan.seed, epoch, ctx.rank))
        for group in self.optimizer.param_groups:
            group["lr"] = plan.lr_at(epoch)
        loader = train_loader(plan, ctx, self.train_set, epoch, s.step)
        self.progress.start_epoch(epoch, self.steps, s.step)
        self.ddp.train()
        window = torch.zeros(3, dtype=torch.float64, device=ctx.device)  # loss sum, correct, images
        timed_from = s.step + min(WARMUP_STEPS, max(0, self.steps - s.step - 1))
        t0 = time.perf_counter() if s.step == timed_from else None
        self._epoch_timer = (time.perf_counter(), 0, 0.0)
        synced_at = s.step
        for batch, target in loader:
            images, labels = self._to_device(batch), target.to(ctx.device, non_blocking=True)
            with self._autocast():
                logits = self.ddp(images)
                loss = F.cross_entropy(logits.float(), labels)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.ema is not None:
                self.ema.update(self.model)
            n = labels.numel()
            window[0] += loss.detach().double() * n
            window[1] += (logits.detach().argmax(dim=1) == labels).sum()
            window[2] += n
            s.step += 1
            if s.step == timed_from:
                self._sync_device()
                t0 = time.perf_counter()
            if s.step % plan.log_every == 0 or s.step == self.steps or s.first_step_loss is None:
                self._check(window, epoch, s.step - synced_at)
                synced_at = s.step
            if self.step_callback is not None:
                self.step_callback(s)
            if s.step >= self.steps:
                break
        self._sync_device()
        if t0 is not None and s.step > timed_from:
            images_timed = (s.step - timed_from) * plan.batch_size
            seconds = time.perf_counter() - t0
            s.train_images += images_timed
            s.train_seconds += seconds
            self._epoch_timer = (self._epoch_timer[0], images_timed, seconds)

    def _check(self, window: torch.Tensor, epoch: int, steps: int) -> None:
        """Check point: reduce the window over ranks, test for divergence and for a preemption request."""
        s = self.state
        flags = torch.cat([window, window.new_tensor([1.0 if self.guard.requested else 0.0])])
        totals = self.ctx.all_reduce_sum(flags).tolist()
        window.zero_()
        loss_sum, correct, seen, stop = totals
        if s.first_step_loss is None and seen > 0:
            s.first_step_loss = loss_sum / seen
        s.loss_sum += loss_sum
        s.correct += correct
        s.seen += seen
        check_finite(loss_sum, f"epoch {epoch + 1} step {s.step}")
        self.progress.steps(steps, s.step, loss=s.loss_sum / max(s.seen, 1.0),
                            lr=self.optimizer.param_groups[0]["lr"])  # fmt: skip
        if stop > 0:
            if self.guard.signum is None:  # another rank got the signal
                self.guard.signum = int(signal.SIGTERM)
            if s.step < self.steps:
                self.save_checkpoint(self.checkpoint_state())
                raise Preempted(self.guard.signum, epoch, s.step)
            self._stop_after_epoch = True  # the epoch is complete: evaluate and save it first

    def _evaluate(self) -> dict[str, float]:
        model = self.ema.model(self.model) if self.ema is not None else self.model
        return evaluate(model, test_loader(self.plan, self.ctx, self.test_set), self.ctx,
                        amp_dtype=self.amp_dtype, channels_last=self.plan.channels_last)  # fmt: skip

    def _end_epoch(self, test: dict[str, float] | None) -> None:
        plan, s = self.plan, self.state
        start, images_timed, seconds = self._epoch_timer
        entry: dict[str, Any] = {
            "epoch": s.epoch + 1,
            "lr": plan.lr_at(s.epoch),
            "train_loss": s.loss_sum / s.seen if s.seen else math.nan,
            "train_error": 100.0 * (1.0 - s.correct / s.seen) if s.seen else math.nan,
            "test_error": test["test_error"] if test else None,
            "test_loss": test["test_loss"] if test else None,
            "images_per_s": images_timed / seconds if seconds > 0 else None,
            "epoch_time_s": time.perf_counter() - start,
        }
        s.history.append(entry)
        if test is not None:
            s.last_eval = test
        s.epoch += 1
        self._reset_epoch()
        preempt = self._stop_after_epoch
        if s.epoch % plan.checkpoint_every == 0 or s.epoch == plan.epochs or preempt:
            self.save_checkpoint(self.checkpoint_state())
        self.on_epoch(s)
        line = (f"epoch {entry['epoch']}/{plan.epochs} lr {entry['lr']:.4g} "
                f"train_loss {entry['train_loss']:.4f} train_error {entry['train_error']:.2f}%")  # fmt: skip
        if test is not None:
            line += f" test_error {test['test_error']:.2f}%"
        if entry["images_per_s"]:
            line += f" {entry['images_per_s']:.0f} img/s"
        self.progress.end_epoch(line)
        if preempt and s.epoch < plan.epochs:
            assert self.guard.signum is not None
            raise Preempted(self.guard.signum, s.epoch, 0)

    # ----------------------------------------------------------------------------------------- helpers

    def checkpoint_state(self) -> dict[str, Any]:
        """What :mod:`pws.classify.checkpoint` saves (gathered RNG states of every rank)."""
        rngs = self.ctx.gather_objects(ckpt.rng_state())
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "train_state": asdict(self.state),
            "rng": rngs,
            "world_size": self.ctx.world_size,
        }

    def _to_device(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.ctx.device, non_blocking=True)
        if self.plan.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def _autocast(self) -> Any:
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.ctx.device.type, dtype=self.amp_dtype)

    def _sync_device(self) -> None:
        if self.ctx.device.type == "cuda":
            torch.cuda.synchronize(self.ctx.device)

    @property
    def images_per_s(self) -> float | None:
        s = self.state
        return s.train_images / s.train_seconds if s.train_seconds > 0 else None
