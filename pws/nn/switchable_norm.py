"""Switchable Normalization (Luo et al., ICLR 2019) for 4-d feature maps.

Per sample n and channel c the statistics of Instance, Layer and Batch Normalization are mixed with learned
softmax weights, one set for the mean and one for the variance::

    mu     = sum_k softmax(lambda_mean)_k * mu_k,   k in (in, ln, bn)
    sigma2 = sum_k softmax(lambda_var)_k  * sigma2_k
    y      = weight_c * (x - mu) / sqrt(sigma2 + eps) + bias_c

IN statistics are per (n, c); LN statistics per n are derived from them (mean of means, mean of second
moments); BN statistics per c likewise. The BN part keeps running statistics used in eval mode. The
mixing logits start equal (all three kinds weighted 1/3).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

STATISTICS = ("in", "ln", "bn")


class SwitchNorm2d(nn.Module):
    """Switchable Normalization over ``(N, C, H, W)``; ``mean_weight``, ``var_weight``: mixing logits."""

    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.mean_weight = nn.Parameter(torch.ones(len(STATISTICS)))
        self.var_weight = nn.Parameter(torch.ones(len(STATISTICS)))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"SwitchNorm2d expects (N, C, H, W) input, got shape {tuple(x.shape)}")
        var_in, mean_in = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)
        sq_in = var_in + mean_in * mean_in
        mean_ln = mean_in.mean(dim=1, keepdim=True)
        var_ln = sq_in.mean(dim=1, keepdim=True) - mean_ln * mean_ln
        if self.training:
            mean_bn = mean_in.mean(dim=0, keepdim=True)
            var_bn = sq_in.mean(dim=0, keepdim=True) - mean_bn * mean_bn
            with torch.no_grad():
                count = x.numel() / x.shape[1]
                unbiased = var_bn.flatten() * (count / max(count - 1, 1))
                self.running_mean.lerp_(mean_bn.flatten(), self.momentum)
                self.running_var.lerp_(unbiased, self.momentum)
        else:
            mean_bn = self.running_mean.view(1, -1, 1, 1)
            var_bn = self.running_var.view(1, -1, 1, 1)
        wm = torch.softmax(self.mean_weight, dim=0)
        wv = torch.softmax(self.var_weight, dim=0)
        mean = wm[0] * mean_in + wm[1] * mean_ln + wm[2] * mean_bn
        var = wv[0] * var_in + wv[1] * var_ln + wv[2] * var_bn
        # y = weight * (x - mean) / sqrt(var + eps) + bias in one pass over x (scale, shift: N x C)
        scale = torch.rsqrt(var + self.eps)
        shift = -mean * scale
        if self.affine:
            weight, bias = self.weight.view(1, -1, 1, 1), self.bias.view(1, -1, 1, 1)
            scale, shift = scale * weight, shift * weight + bias
        return torch.addcmul(shift, x, scale)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"
