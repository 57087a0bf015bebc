"""What the detectors' config and their layers share without importing each other: the channel rule of
narrowed models (option ``width`` < 1, the smoke scale's) and the head norms a model may take.

:mod:`pws.detect.models` loads ``configs/mmdet/*.py``, whose ``custom_imports`` load
:mod:`pws.detect.registry`, which loads the layers (:mod:`pws.detect.backbones`, :mod:`pws.detect.heads`):
those read this module, never :mod:`pws.detect.models` (no cycle at run time).
"""

from __future__ import annotations

# Every channel count times the width, rounded to a multiple of 16 (at width 0.25 each count is exactly a
# quarter of the paper's). GroupNorm (norm=gn) then takes gcd(32, C) groups: 16 in a 16-channel layer
# (pws.nn.group_norm.GroupNorm2d).
CHANNEL_MULTIPLE = 16
# The option head_norm: "none" (mmdet's model, the paper's) or "layer": for SSD (FixedSSDHead's
# prediction_norm) the authors' code's LayerNorm of every prediction map (pws.detect.heads); for Mask R-CNN
# the ``ln`` method's norm (a LayerNorm over C, H, W: GroupNorm of one group) after every FPN conv, whose maps
# the heads read.
HEAD_NORMS = ("none", "layer")


def scaled_channels(channels: int, width: float, multiple: int = CHANNEL_MULTIPLE) -> int:
    """``channels * width`` rounded to a multiple of ``multiple`` (at least one); ``channels`` at width 1."""
    if width == 1.0:
        return int(channels)
    return max(multiple, multiple * round(channels * width / multiple))
