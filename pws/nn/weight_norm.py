"""Weight Normalization with g = 1 (Salimans & Kingma 2016; the paper's baseline "WN (g = 1)").

Per output filter ``o``: ``W_hat_o = g_o * V_o / ||V_o||`` (eq. 9 of the paper), with ``g_o`` trainable and
initialized to 1. ``torch.nn.utils.weight_norm`` would set ``g = ||V||`` at registration (the data-free
analogue of WN's data-dependent init), which the paper reports collapses at LR 1e-2.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pws.nn.pws_conv import check_groups


class WNConv2d(nn.Conv2d):
    """Conv2d with ``W_hat_o = g_o V_o / ||V_o||``; ``weight`` holds V (He init), ``g`` starts at g_init."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        g_init: float = 1.0,
    ) -> None:
        check_groups(in_channels, out_channels, groups)
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            padding_mode, device, dtype,
        )
        self.g = nn.Parameter(torch.full((out_channels,), float(g_init), device=device, dtype=dtype))
        nn.init.kaiming_normal_(self.weight, mode="fan_in", nonlinearity="relu")
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def normalized_weight(self) -> Tensor:
        """``g_o * V_o / ||V_o||`` per output filter (the paper's WN; its variance is eq. 9)."""
        norm = self.weight.flatten(1).norm(dim=1)
        return self.weight * (self.g / norm).view(-1, *([1] * (self.weight.dim() - 1)))

    def effective_weight(self) -> Tensor:
        """The kernel the layer convolves with, ``g_o * V_o / ||V_o||`` (variance: eq. 9; the
        :class:`pws.nn.methods.ReparametrizedConv` protocol; the same as :meth:`normalized_weight`)."""
        return self.normalized_weight()

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.normalized_weight(), self.bias)
