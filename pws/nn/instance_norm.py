"""Instance normalization that is defined on a map of one pixel (the IN baseline of Tables 1 and 4)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class InstanceNorm2d(nn.InstanceNorm2d):
    """``(x - E[x]) / sqrt(Var[x] + eps) * weight + bias``, the statistics per sample and channel over
    (H, W): PyTorch's ``InstanceNorm2d``, also on a 1x1 map, where the single value is its own mean and
    normalizes to 0, so the output is the shift ``bias``. PyTorch refuses such a map in training ("Expected
    more than 1 spatial element"), and SSD's last extra layer is one (SSD320: a 1x1 map); the authors'
    instance norm (TensorFlow moments over H and W) returns the shift there."""

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2] * x.shape[-1] > 1:
            return super().forward(x)
        out = torch.zeros_like(x)
        if self.affine:  # weight * 0 keeps the weight in the graph (its gradient is 0)
            out = out * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return out
