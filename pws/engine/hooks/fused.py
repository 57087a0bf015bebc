"""``train.fused_pws``: every PWS kernel of the run's network computed in one segmented op per step.

mmengine's Runner builds the model of every app (the classifier, the detector) from the app's config; this
hook applies :func:`pws.nn.fuse_standardization` to that built model before the run (``before_run``, before
mmengine loads or resumes a checkpoint and before ``EMAHook`` copies the model, so the average is fused on
its own), in one place for both apps. The fusion changes no parameter, buffer or ``state_dict`` key:
checkpoints of a fused run load in a run without it and back. The kernels are those of eq. (12), their
gradient that of the per-layer path (eq. 13 holds per filter; :mod:`pws.nn.fused`).
"""

from __future__ import annotations

from typing import Any

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from pws.nn.fused import fuse_standardization, pws_layers


@HOOKS.register_module(name="FusedStandardizationHook", force=True)
class FusedStandardizationHook(Hook):
    """Fuse the standardization of every PWS layer of ``runner.model`` (wrapped or not) before the run."""

    priority = "ABOVE_NORMAL"  # before EMAHook (NORMAL) builds its copy of the model

    def __init__(self) -> None:
        self.layers = 0  # the PWS layers fused (0: the network has none, nothing changes)

    def before_run(self, runner: Any) -> None:
        self.layers = len(pws_layers(runner.model))
        fuse_standardization(runner.model)
        runner.logger.info(
            f"train.fused_pws: the {self.layers} PWS layers standardized in one segmented op per step"
            if self.layers else "train.fused_pws: the network has no PWS layer; nothing fused"
        )
