"""Exponential moving average of the weights, evaluated instead of the raw weights (``ema.enabled=true``).

The authors' TensorFlow CIFAR-10 code evaluated an EMA of the trainable variables with decay 0.997; the
paper does not mention it, so it is off by default. After each optimizer step
``shadow <- d * shadow + (1 - d) * param`` with ``d = decay``, or ``d = min(decay, (1 + t) / (10 + t))``
with ``warmup`` (TensorFlow's ``ExponentialMovingAverage`` given ``num_updates = t``). Buffers (BN/SN
running statistics, PWS's ``alpha_initialized``) are not averaged: the evaluated model takes the live ones,
as TF's moving statistics are separate from the averaged variables.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """An averaged copy of ``model``'s parameters; :meth:`model` returns the copy to evaluate."""

    def __init__(self, model: nn.Module, decay: float, warmup: bool = True) -> None:
        self.decay = decay
        self.warmup = warmup
        self.updates = 0
        self.averaged = copy.deepcopy(model).eval()
        for p in self.averaged.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        shadow = [p for p in self.averaged.parameters()]
        live = [p.detach() for p in model.parameters()]
        torch._foreach_mul_(shadow, d)
        torch._foreach_add_(shadow, live, alpha=1.0 - d)
        self.updates += 1

    @torch.no_grad()
    def model(self, live: nn.Module) -> nn.Module:
        """The averaged model with ``live``'s buffers, ready for evaluation."""
        for b, src in zip(self.averaged.buffers(), live.buffers(), strict=True):
            b.copy_(src)
        return self.averaged

    def state_dict(self) -> dict[str, object]:
        return {"updates": self.updates, "model": self.averaged.state_dict()}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.updates = int(state["updates"])  # type: ignore[arg-type]
        self.averaged.load_state_dict(state["model"])  # type: ignore[arg-type]
