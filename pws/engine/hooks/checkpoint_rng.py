"""Every random generator's state in each checkpoint, taken back on resume (an exact resume needs it)."""

from __future__ import annotations

from typing import Any

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from pws.engine.random_state import get_random_state

KEY = "pws_random_state"


@HOOKS.register_module(name="RandomStateHook", force=True)
class RandomStateHook(Hook):
    """Saves python/numpy/torch/CUDA states; on resume hands them to the loop, which puts them back once
    it has skipped the iterations already done (:class:`pws.engine.loops.ExactResumeEpochLoop`)."""

    priority = "NORMAL"

    def before_save_checkpoint(self, runner: Any, checkpoint: dict[str, Any]) -> None:
        checkpoint[KEY] = get_random_state()

    def after_load_checkpoint(self, runner: Any, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get(KEY)
        if state is not None and hasattr(runner.train_loop, "pending_random_state"):
            runner.train_loop.pending_random_state = state
