"""A non-finite training loss ends the run as ``diverged`` (the paper's tables print NaN for it)."""

from __future__ import annotations

import math
from typing import Any

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from pws.engine.errors import Diverged
from pws.engine.outputs import scalars


@HOOKS.register_module(name="DivergenceHook", force=True)
class DivergenceHook(Hook):
    """Raise :class:`~pws.engine.errors.Diverged` after the first iteration whose total loss is NaN or inf."""

    priority = "HIGHEST"

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        loss = scalars(outputs).get("loss")
        if loss is not None and not math.isfinite(loss):
            raise Diverged(
                f"non-finite training loss {loss} at iteration {runner.iter + 1} (epoch {runner.epoch + 1})"
            )
