"""The IN baseline's norm: PyTorch's instance norm, and its shift on a map of one pixel."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pws.nn.instance_norm import InstanceNorm2d


def _pair(channels: int = 6) -> tuple[InstanceNorm2d, nn.InstanceNorm2d]:
    ours, ref = InstanceNorm2d(channels, affine=True), nn.InstanceNorm2d(channels, affine=True)
    with torch.no_grad():
        for layer in (ours, ref):
            layer.weight.copy_(torch.linspace(0.5, 2.0, channels))
            layer.bias.copy_(torch.linspace(-1.0, 1.0, channels))
    return ours, ref


@pytest.mark.parametrize("size", [(5, 5), (1, 3), (2, 1)])
def test_equals_pytorch_on_maps_of_more_than_one_pixel(size: tuple[int, int]) -> None:
    ours, ref = _pair()
    x = torch.randn(3, 6, *size)
    torch.testing.assert_close(ours(x), ref(x))


def test_a_one_pixel_map_normalizes_to_the_shift() -> None:
    """(x - x) / sqrt(0 + eps) = 0, so the output is the bias; the gradient reaches the bias (one per
    sample and pixel) and nothing else. PyTorch's own layer refuses the map in training."""
    ours, ref = _pair()
    x = torch.randn(4, 6, 1, 1, requires_grad=True)
    y = ours(x)
    torch.testing.assert_close(y, ours.bias.view(1, 6, 1, 1).expand(4, 6, 1, 1))
    y.sum().backward()
    torch.testing.assert_close(ours.bias.grad, torch.full((6,), 4.0))
    assert not ours.weight.grad.any() and x.grad is None  # the input does not reach the output
    with pytest.raises(ValueError, match="more than 1 spatial element"):
        ref(x)
