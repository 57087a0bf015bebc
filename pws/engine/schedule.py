"""The step schedule of every app (LR x factor after milestone epochs), checked, and one rule for
shortening it at smoke scale."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from pws.engine.schema import Validator


@dataclass(frozen=True)
class StepSchedule:
    """``epochs`` epochs, the LR times ``factor`` after each epoch of ``milestones`` (after shortening)."""

    epochs: int
    milestones: list[int] = field(default_factory=list)
    factor: float = 0.1

    def lr_at(self, base_lr: float, epoch: int) -> float:
        """The LR of 0-based ``epoch``: ``base_lr * factor ** (number of milestones <= epoch)``."""
        return base_lr * self.factor ** sum(1 for m in self.milestones if epoch >= m)

    def scheduler(self) -> dict[str, Any]:
        """mmengine's ``MultiStepLR`` entry of ``param_scheduler``."""
        return dict(
            type="MultiStepLR", by_epoch=True, begin=0, end=self.epochs, milestones=list(self.milestones),
            gamma=self.factor,
        )  # fmt: skip


def step_schedule(v: Validator, scale_epochs: str) -> StepSchedule | None:
    """``schedule.{epochs,milestones,factor}`` checked (milestones increasing, inside the schedule), then
    shortened to the scale's ``scale_epochs`` key when that is set (:func:`shorten_schedule`). None if
    invalid."""
    epochs = v.integer("schedule.epochs", minimum=1)
    milestones = v.int_list("schedule.milestones")
    factor = v.number("schedule.factor", above=0.0, maximum=1.0)
    if epochs is not None and milestones is not None:
        if any(b <= a for a, b in itertools.pairwise(milestones)):
            v.fail(f"schedule.milestones must be strictly increasing, got {milestones}")
            milestones = None
        elif milestones and not (milestones[0] >= 1 and milestones[-1] < epochs):
            v.fail(f"schedule.milestones must lie in [1, schedule.epochs - 1 = {epochs - 1}], "
                   f"got {milestones}")  # fmt: skip
            milestones = None
    target = v.integer(scale_epochs, minimum=1, optional=True)
    if epochs is None or milestones is None or factor is None:
        return None
    return StepSchedule(*shorten_schedule(epochs, milestones, target), factor=factor)


def shorten_schedule(epochs: int, milestones: list[int], target: int | None) -> tuple[int, list[int]]:
    """The step schedule ``epochs`` / ``milestones`` shortened to ``target`` epochs (None: unchanged).

    Each milestone ``m`` becomes ``round(m * target / epochs)``, kept only if it lies in ``[1, target - 1]``
    and is later than the previous kept one: two steps that land on one epoch merge into one (the LR drops
    by the factor once, not twice), so that 200 epochs with steps at 100/150/180 become 12 epochs with steps
    at 6/9/11, and 240 epochs with steps at 160/200 become 2 epochs with one step at 1.
    """
    if target is None or target == epochs:
        return epochs, list(milestones)
    scaled: list[int] = []
    for m in milestones:
        s = round(m * target / epochs)
        if 1 <= s <= target - 1 and (not scaled or s > scaled[-1]):
            scaled.append(s)
    return target, scaled
