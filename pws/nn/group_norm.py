"""Group normalization whose grouping fits every layer (the GN baseline of Tables 1, 4 and 5)."""

from __future__ import annotations

import math

from torch import nn


class GroupNorm2d(nn.GroupNorm):
    """GroupNorm (Wu & He 2018): ``(x - E[x]) / sqrt(Var[x] + eps) * weight + bias``, the statistics per
    sample over each group of channels and (H, W), with ``gcd(num_groups, num_features)`` groups: Wu and
    He's 32 wherever 32 divides the channels, and otherwise the largest grouping that divides the layer
    instead of an error (16 channels, as the CIFAR ResNet's first stage or VGG's first block at the smoke
    width: 16 groups)."""

    def __init__(
        self, num_features: int, num_groups: int = 32, eps: float = 1e-5, affine: bool = True
    ) -> None:
        super().__init__(math.gcd(int(num_groups), num_features), num_features, eps=eps, affine=affine)
