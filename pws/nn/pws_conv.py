"""Parametric Weights Standardization (PWS), eq. (12) of Liu et al., AAAI 2021.

Per output filter ``o`` of a conv layer with ``n = (in_channels / groups) * k_h * k_w`` weights per filter::

    W_hat_o = s * (W_o - E[W_o]) / sqrt(Var[W_o] + gamma),     s = sqrt(2 / n)
    Y_o     = alpha_o * conv(X, W_hat_o) + beta_o

``Var`` is the biased (population) variance and ``gamma`` sits inside the square root: it is not the
``eps`` of a normalization but a fixed constant that bounds ``1 / sqrt(Var[W_o] + gamma)`` as weight decay
shrinks ``Var[W_o]`` (the paper's section "Parameter gamma", Figure 2). Because ``E[W_hat_o] = 0`` for
every filter, the gradient reaching the raw weights has zero mean per filter (eq. 13): the shift of the
average gradient is removed exactly.

Implementation: ``alpha * s`` is folded into the kernel (a per-filter scale of W_hat) instead of multiplying
every output activation. The standardization of all filters of a layer is a batch normalization of the
weight viewed as ``(1, out_channels, n)``: on the CPU a custom autograd function computes it with vectorized
ops (mean, centre, norm, scale in place: one temporary) and backpropagates with ATen's fused batch-norm
backward (one pass for the two per-filter sums, one for the gradient); ATen's CPU batch-norm forward is
slower, its scalar per-channel loops costing ~2x the time. Other devices use ``F.batch_norm`` itself.
Nothing is cached: the standardized kernel always follows the raw weight.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

GAMMA_MODES = ("var", "equiv")
ALPHA_INITS = ("ones", "data")


AUTO_GAMMA = "auto"


def auto_gamma(fan_in: int) -> float:
    """The paper's suggestion for gamma (its Conclusion): ``0.1 * sqrt(n_l / 2)`` for a layer of ``n_l``
    fan-in weights (576 -> 1.7). Note that this is far larger than the 1e-5 .. 1e-3 of its experiments and
    than ``Var[W_o] = 2 / n_l`` at He initialization: as printed, it makes ``1 / sqrt(Var[W_o] + gamma)``
    almost constant, so the kernel's scale is then carried by alpha."""
    return 0.1 * math.sqrt(fan_in / 2.0)


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
    scale = scale.to(weight.dtype)
    if weight.device.type == "cpu":
        return _StandardizeCPU.apply(weight, scale, float(gamma))
    return standardize_weight_batch_norm(weight, gamma, scale)


def standardize_weight_batch_norm(weight: Tensor, gamma: float, scale: Tensor) -> Tensor:
    """``standardize_weight`` as one ``F.batch_norm`` call (any device; the default off the CPU)."""
    out_channels = weight.shape[0]
    if gamma <= 0:  # F.batch_norm rejects eps = 0 in training mode: the unfused path for gamma = 0
        var, mean = torch.var_mean(weight.reshape(out_channels, -1), dim=1, correction=0, keepdim=True)
        flat = (weight.reshape(out_channels, -1) - mean) * (scale.view(-1, 1) * var.rsqrt())
        return flat.reshape_as(weight)
    flat = F.batch_norm(
        weight.reshape(1, out_channels, -1),
        None,
        None,
        weight=scale,
        bias=None,
        training=True,
        momentum=0.0,
        eps=gamma,
    )
    return flat.reshape_as(weight)


class _StandardizeCPU(torch.autograd.Function):
    """``standardize_weight`` on the CPU: vectorized forward, ATen's fused batch-norm backward."""

    @staticmethod
    def forward(ctx, weight: Tensor, scale: Tensor, gamma: float) -> Tensor:
        out_channels = weight.shape[0]
        flat = weight.reshape(out_channels, -1)
        mean = flat.mean(dim=1)
        out = flat - mean.unsqueeze(1)
        rstd = torch.linalg.vector_norm(out, dim=1).square_().div_(flat.shape[1]).add_(gamma).rsqrt_()
        out.mul_((scale * rstd).unsqueeze(1))
        ctx.save_for_backward(weight, scale, mean, rstd)
        return out.view(weight.shape)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        weight, scale, mean, rstd = ctx.saved_tensors
        shape = (1, weight.shape[0], -1)
        grad_weight, grad_scale, _ = torch.ops.aten.native_batch_norm_backward(
            grad.reshape(shape), weight.reshape(shape), scale, None, None, mean, rstd, True, 0.0,
            [ctx.needs_input_grad[0], ctx.needs_input_grad[1], False],
        )
        return (None if grad_weight is None else grad_weight.view(weight.shape)), grad_scale, None


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
        gamma: float | str = 1e-3,
        fan_in_scale: bool = True,
        learn_alpha: bool = True,
        gamma_mode: str = "var",
        alpha_init: str = "ones",
    ) -> None:
        validate_pws_options(
            gamma=gamma, gamma_mode=gamma_mode, alpha_init=alpha_init, learn_alpha=learn_alpha
        )
        check_groups(in_channels, out_channels, groups)
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            padding_mode, device, dtype,
        )
        self.gamma_auto = gamma == AUTO_GAMMA
        self.gamma = auto_gamma(self.fan_in) if self.gamma_auto else float(gamma)
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
        self._alpha_ready = alpha_init == "ones"  # the buffer, mirrored on the host: alpha_is_initialized
        if self.fan_in < 2:
            raise ValueError(
                f"PWS standardizes each filter over its n = (in_channels / groups) * k_h * k_w weights; "
                f"n = {self.fan_in} here, so every standardized weight would be 0: use n >= 2"
            )

    @property
    def fan_in(self) -> int:
        """n = (in_channels / groups) * k_h * k_w, the number of weights in one filter."""
        return self.weight[0].numel()

    def reset_parameters(self) -> None:
        """He (kaiming) normal init of the raw weight (fan-in, ReLU gain); alpha = 1, beta = 0.

        Overrides ``nn.Conv2d.reset_parameters`` (which ``nn.Conv2d.__init__`` calls, and so do meta-device
        / FSDP initializers), so the raw weight never gets torch's default conv init, whose smaller variance
        would change the scale of W_hat (see the class docstring). ``alpha_init="data"`` re-arms.
        """
        nn.init.kaiming_normal_(self.weight, mode="fan_in", nonlinearity="relu")
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        if hasattr(self, "alpha_initialized"):  # not yet during nn.Conv2d.__init__
            with torch.no_grad():
                self.alpha.fill_(1.0)
                self.alpha_initialized.fill_(self.alpha_init == "ones")
            self._alpha_ready = self.alpha_init == "ones"

    def kernel_scale(self) -> Tensor:
        """Per-filter factor applied after standardization: ``alpha_o * sqrt(2 / n)`` (or alpha_o alone)."""
        s = math.sqrt(2.0 / self.fan_in) if self.fan_in_scale else 1.0
        return self.alpha * s

    def standardization_gamma(self) -> float:
        """The constant inside ``sqrt(Var[W_o] + gamma)`` of eq. (12), after ``gamma_mode``."""
        return effective_gamma(self.gamma, self.fan_in, self.gamma_mode)

    def effective_weight(self) -> Tensor:
        """The kernel the layer convolves with: ``alpha_o * W_hat_o`` of eq. (12) (the
        :class:`pws.nn.methods.ReparametrizedConv` protocol)."""
        return standardize_weight(self.weight, self.standardization_gamma(), self.kernel_scale())

    def forward(self, x: Tensor) -> Tensor:
        if self.alpha_init == "data" and self.training and not self.alpha_is_initialized():
            self._init_alpha_from_data(x)
        return self._conv_forward(x, self.effective_weight(), self.bias)

    def alpha_is_initialized(self) -> bool:
        """The ``alpha_initialized`` buffer, read from the device only until it is True (reading a GPU
        tensor waits for the GPU; doing so every forward would stall training)."""
        if not self._alpha_ready:
            self._alpha_ready = bool(self.alpha_initialized)
        return self._alpha_ready

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._alpha_ready = False  # the loaded buffer decides; read it at the next training forward

    @torch.no_grad()
    def _init_alpha_from_data(self, x: Tensor) -> None:
        """Authors' ImageNet option: alpha = sqrt(2 / Var[conv(X, W_hat)]) over the whole output."""
        self.alpha.fill_(1.0)
        y = self._conv_forward(x, self.effective_weight(), None)
        self.alpha.fill_(math.sqrt(2.0 / max(y.var().item(), 1e-12)))
        self.alpha_initialized.fill_(True)
        self._alpha_ready = True

    def _gamma_text(self) -> str:
        return f"auto ({self.gamma:.4g})" if self.gamma_auto else f"{self.gamma}"

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, gamma={self._gamma_text()}, gamma_mode={self.gamma_mode}, "
            f"fan_in_scale={self.fan_in_scale}, learn_alpha={self.learn_alpha}, alpha_init={self.alpha_init}"
        )


def validate_pws_options(
    *, gamma: float | str, gamma_mode: str, alpha_init: str, learn_alpha: bool = True
) -> None:
    """Raise ValueError naming the bad option and what is allowed."""
    if gamma == AUTO_GAMMA:
        pass
    elif (
        isinstance(gamma, bool)
        or not isinstance(gamma, (int, float))
        or not math.isfinite(gamma)
        or gamma < 0
    ):
        raise ValueError(
            f"PWS gamma must be a finite number >= 0 (the paper uses 1e-5 .. 1e-3) or 'auto' "
            f"(0.1 sqrt(n_l / 2) per layer), got {gamma!r}"
        )
    if gamma_mode not in GAMMA_MODES:
        raise ValueError(f"PWS gamma_mode must be one of {GAMMA_MODES}, got {gamma_mode!r}")
    if alpha_init not in ALPHA_INITS:
        raise ValueError(f"PWS alpha_init must be one of {ALPHA_INITS}, got {alpha_init!r}")
    if alpha_init == "data" and not learn_alpha:
        raise ValueError(
            "PWS alpha_init='data' sets alpha from the first batch, but learn_alpha=False fixes alpha at 1: "
            "use learn_alpha=True with alpha_init='data', or alpha_init='ones'"
        )


def check_groups(in_channels: int, out_channels: int, groups: int) -> None:
    """Raise ValueError unless ``groups`` divides both channel counts."""
    if groups < 1 or in_channels % groups or out_channels % groups:
        raise ValueError(
            f"groups={groups} must be a positive divisor of in_channels={in_channels} "
            f"and out_channels={out_channels}"
        )
