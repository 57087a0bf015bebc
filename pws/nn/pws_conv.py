"""Parametric Weights Standardization (PWS), eq. (12) of Liu et al., AAAI 2021.

Per output filter ``o`` of a conv layer with ``n = (in_channels / groups) * k_h * k_w`` weights per filter::

    W_hat_o = s * (W_o - E[W_o]) / sqrt(Var[W_o] + gamma),     s = sqrt(2 / n)
    Y_o     = alpha_o * conv(X, W_hat_o) + beta_o

``Var`` is the biased (population) variance and ``gamma`` sits inside the square root: it is not the
``eps`` of a normalization but a fixed constant that bounds ``1 / sqrt(Var[W_o] + gamma)`` as weight decay
shrinks ``Var[W_o]`` (the paper's section "Parameter gamma", Figure 2). Because ``E[W_hat_o] = 0`` for
every filter, the gradient reaching the raw weights has zero mean per filter (eq. 13): the shift of the
average gradient is removed exactly.

Implementation: the standardization of all filters is one fused ``F.batch_norm`` call over the weight
viewed as ``(1, out_channels, n)`` (one read of W, one write of W_hat, and likewise backward), with
``alpha * s`` as the batch-norm scale, so ``alpha`` is folded into the kernel instead of multiplying every
output activation. Nothing is cached: the standardized kernel always follows the raw weight.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

GAMMA_MODES = ("var", "equiv")
ALPHA_INITS = ("ones", "data")


def effective_gamma(gamma: float, fan_in: int, gamma_mode: str) -> float:
    """The constant added to Var[W_o] in eq. (12).

    ``"var"`` is the paper's form. ``"equiv"`` is the authors' code option ``gamma <- 2 * gamma / n``, which
    makes ``(W - E[W]) / sqrt(n * Var[W] / 2 + gamma)`` (used in their Mask R-CNN neck and heads).
    """
    return gamma if gamma_mode == "var" else 2.0 * gamma / fan_in


def standardize_weight(
    weight: Tensor, gamma: float, scale: Tensor | float = 1.0
) -> Tensor:
    """Return ``scale_o * (W_o - E[W_o]) / sqrt(Var[W_o] + gamma)`` per output filter ``o`` (eq. 12).

    ``weight`` has shape ``(out, ...)``; ``scale`` is a scalar or a tensor of ``out`` values (in PWS:
    ``alpha_o * sqrt(2 / n)``). Biased variance, gamma inside the square root.
    """
    out_channels = weight.shape[0]
    if not torch.is_tensor(scale):
        scale = weight.new_full((out_channels,), float(scale))
    flat = F.batch_norm(
        weight.reshape(1, out_channels, -1),
        None,
        None,
        weight=scale.to(weight.dtype),
        bias=None,
        training=True,
        momentum=0.0,
        eps=gamma,
    )
    return flat.reshape_as(weight)


class PWSConv2d(nn.Conv2d):
    """A conv layer whose kernel is standardized per filter as in eq. (12), with a trainable gain alpha.

    Arguments mirror :class:`torch.nn.Conv2d`; the keyword-only options are:

    * ``gamma`` (>= 0): the constant inside ``sqrt(Var[W_o] + gamma)``. The paper uses 1e-3 at LR 1e-2,
      1e-5 at LR 1e-3 (VOC), 1e-4 on COCO and ImageNet, 1e-3 on CIFAR-10.
    * ``fan_in_scale``: multiply by ``sqrt(2 / n)`` (True, eq. 12). False is Table 2's ablation row.
    * ``learn_alpha``: alpha is a trainable per-filter parameter (True). False keeps alpha at 1 as a
      buffer (Table 2's row without trainable alpha).
    * ``gamma_mode``: ``"var"`` (the paper) or ``"equiv"`` (the authors' code, ``gamma <- 2 gamma / n``).
    * ``alpha_init``: ``"ones"`` (the paper) or ``"data"`` (the authors' ImageNet code: on the first
      training forward, ``alpha = sqrt(2 / Var[output])`` with one scalar variance over the whole output;
      the ``alpha_initialized`` buffer is saved in checkpoints, so a resumed run does not re-initialize).

    Parameters: ``weight`` (raw W, He normal: fan-in, ReLU gain), ``alpha`` (init 1), ``bias`` (beta, init 0).
    """

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
        gamma: float = 1e-3,
        fan_in_scale: bool = True,
        learn_alpha: bool = True,
        gamma_mode: str = "var",
        alpha_init: str = "ones",
    ) -> None:
        validate_pws_options(gamma=gamma, gamma_mode=gamma_mode, alpha_init=alpha_init)
        check_groups(in_channels, out_channels, groups)
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            padding_mode, device, dtype,
        )
        self.gamma = float(gamma)
        self.fan_in_scale = bool(fan_in_scale)
        self.learn_alpha = bool(learn_alpha)
        self.gamma_mode = gamma_mode
        self.alpha_init = alpha_init
        alpha = torch.ones(out_channels, device=device, dtype=dtype)
        if learn_alpha:
            self.alpha = nn.Parameter(alpha)
        else:
            self.register_buffer("alpha", alpha)
        self.register_buffer("alpha_initialized", torch.tensor(alpha_init == "ones"))
        self.reset_pws_parameters()

    @property
    def fan_in(self) -> int:
        """n = (in_channels / groups) * k_h * k_w, the number of weights in one filter."""
        return self.weight[0].numel()

    def reset_pws_parameters(self) -> None:
        """He (kaiming) normal init of the raw weight (fan-in, ReLU gain); alpha = 1, beta = 0."""
        nn.init.kaiming_normal_(self.weight, mode="fan_in", nonlinearity="relu")
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        with torch.no_grad():
            self.alpha.fill_(1.0)

    def kernel_scale(self) -> Tensor:
        """Per-filter factor applied after standardization: ``alpha_o * sqrt(2 / n)`` (or alpha_o alone)."""
        s = math.sqrt(2.0 / self.fan_in) if self.fan_in_scale else 1.0
        return self.alpha * s

    def standardized_weight(self) -> Tensor:
        """The kernel the layer convolves with: ``alpha_o * W_hat_o`` of eq. (12)."""
        gamma = effective_gamma(self.gamma, self.fan_in, self.gamma_mode)
        return standardize_weight(self.weight, gamma, self.kernel_scale())

    def forward(self, x: Tensor) -> Tensor:
        if self.training and not bool(self.alpha_initialized):
            self._init_alpha_from_data(x)
        return self._conv_forward(x, self.standardized_weight(), self.bias)

    @torch.no_grad()
    def _init_alpha_from_data(self, x: Tensor) -> None:
        """Authors' ImageNet option: alpha = sqrt(2 / Var[conv(X, W_hat)]) over the whole output."""
        self.alpha.fill_(1.0)
        y = self._conv_forward(x, self.standardized_weight(), None)
        self.alpha.fill_(math.sqrt(2.0 / max(y.var().item(), 1e-12)))
        self.alpha_initialized.fill_(True)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, gamma={self.gamma}, gamma_mode={self.gamma_mode}, "
            f"fan_in_scale={self.fan_in_scale}, learn_alpha={self.learn_alpha}, alpha_init={self.alpha_init}"
        )


def validate_pws_options(*, gamma: float, gamma_mode: str, alpha_init: str) -> None:
    """Raise ValueError naming the bad option and what is allowed."""
    if not isinstance(gamma, (int, float)) or math.isnan(gamma) or gamma < 0:
        raise ValueError(f"PWS gamma must be a number >= 0 (the paper uses 1e-5 .. 1e-3), got {gamma!r}")
    if gamma_mode not in GAMMA_MODES:
        raise ValueError(f"PWS gamma_mode must be one of {GAMMA_MODES}, got {gamma_mode!r}")
    if alpha_init not in ALPHA_INITS:
        raise ValueError(f"PWS alpha_init must be one of {ALPHA_INITS}, got {alpha_init!r}")


def check_groups(in_channels: int, out_channels: int, groups: int) -> None:
    """Raise ValueError unless ``groups`` divides both channel counts."""
    if groups < 1 or in_channels % groups or out_channels % groups:
        raise ValueError(
            f"groups={groups} must be a positive divisor of in_channels={in_channels} "
            f"and out_channels={out_channels}"
        )
