"""One rule for shortening a schedule at smoke scale, for every app."""

from __future__ import annotations


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
