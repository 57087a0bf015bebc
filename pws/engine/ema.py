"""The authors' weight average (their TensorFlow CIFAR code), as an mmengine averaged model for ``EMAHook``.

``shadow <- d_t * shadow + (1 - d_t) * param`` after each optimizer step with
``d_t = min(decay, (1 + t) / (10 + t))`` (TensorFlow's ``ExponentialMovingAverage`` given
``num_updates = t``), or ``d_t = decay`` without ``warmup``. mmengine's averaged models copy the weights at
their first update (t = 0) and average from the second on; buffers (BN running statistics) are copied
from the live model, not averaged. ``EMAHook`` swaps the averaged weights in for every evaluation and
keeps them in every checkpoint.
"""

from __future__ import annotations

from mmengine.model import BaseAveragedModel
from mmengine.registry import MODELS
from torch import Tensor, nn


def tf_decay(decay: float, steps: int, warmup: bool) -> float:
    """The decay of update ``steps`` (0-based count of the updates before it)."""
    return min(decay, (1 + steps) / (10 + steps)) if warmup else decay


@MODELS.register_module(name="TFStyleEMA", force=True)
class TFStyleEMA(BaseAveragedModel):
    """Exponential moving average of the parameters with TensorFlow's warm-up (see the module)."""

    def __init__(
        self,
        model: nn.Module,
        decay: float = 0.997,
        warmup: bool = True,
        interval: int = 1,
        device: object = None,
        update_buffers: bool = False,
    ) -> None:
        super().__init__(model, interval, device, update_buffers)
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup

    def avg_func(self, averaged_param: Tensor, source_param: Tensor, steps: int) -> None:
        d = tf_decay(self.decay, int(steps), self.warmup)
        averaged_param.mul_(d).add_(source_param, alpha=1.0 - d)
