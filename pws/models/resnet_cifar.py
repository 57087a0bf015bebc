"""Table 4's residual CIFAR-10 network ("Residual"): the authors' pre-activation bottleneck ResNet-56.

Which depth and block, and why
------------------------------
The paper says only "The residual architecture is the same as (He et al. 2016a)", and its references make
2016a *Deep Residual Learning for Image Recognition* (CVPR 2016; 2016b is *Identity Mappings in Deep
Residual Networks*, ECCV 2016). 2016a's CIFAR-10 nets are post-activation (conv-BN-ReLU) basic-block ResNets
of depth 6n + 2 (ResNet-20 .. 110). This module does **not** build those: it builds the network of the
authors' TensorFlow code, which produced the CIFAR-10 numbers of Table 4 (their README: the CIFAR numbers
came from the old TensorFlow code): a pre-activation *bottleneck* ResNet with 3 stages of 6 units each and
bottleneck widths 16/32/64 (unit outputs 64/128/256), i.e. 2016b's pre-activation unit (its Fig. 4(e)) in
2016b's CIFAR bottleneck family of depth 9n + 2 with n = 6: 56 weighted layers (1 stem conv + 3 x 6 x 3
convs in the units + 1 logits layer). The code is the only source that pins depth, block and widths; the
citation names 2016a, whose nets differ in the block (basic, post-activation) and the depth rule. (Their
later PyTorch repository used a basic-block CIFAR ResNet-34 for other numbers, not for Table 4.)

Layout (input 32x32, defaults)::

    stem      conv3x3-64 + norm + ReLU                                           32x32, 64
    stage 1   6 units, width 16, out 64;  stride 2 in the last unit              -> 16x16
    stage 2   6 units, width 32, out 128; stride 2 in the last unit              -> 8x8
    stage 3   6 units, width 64, out 256                                          8x8
    head      pre-activation, global average pool, conv1x1-num_classes (bias) -> logits

One unit (pre-activation bottleneck, He et al. 2016b Fig. 4(e))::

    p        = preact(x)
    residual = conv1x1(width)(p) + norm + ReLU -> conv3x3(width, stride)(.) + norm + ReLU -> conv1x1(out)(.)
    shortcut = x                    if the channels do not change (x[:, :, ::2, ::2] when stride 2)
               conv1x1(out)(p)      otherwise (first unit of stages 2 and 3; no norm)
    y        = residual + shortcut

As in the authors' code the strides sit on the *last* unit of stages 1 and 2 (TF-slim's ``resnet_v2``
convention, on the 3x3 conv of that unit), the stem has its own norm and ReLU, and the logits layer is a 1x1
conv from the method factory (a PWS conv under ``pws``).

Pre-activation without an output norm
-------------------------------------
For methods with an output norm (bn, gn, in, ln, sn) ``preact(x) = ReLU(norm(x))``. For methods without one
(none, wn, pws) the authors' code uses ``preact(x) = ReLU(x / sqrt(2))``, and so do we (kwarg
``preact_scale``, default ``1 / sqrt(2)``; ``1.0`` gives a plain ``ReLU(x)``). The factor compensates the
variance doubling at each addition of two branches of similar variance, which no norm removes here; PWS's
alpha can learn any other scale. The head's final pre-activation uses the same rule.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from pws.nn.factory import NormMethod

STAGE_WIDTHS: tuple[int, int, int] = (16, 32, 64)
STAGE_STRIDES: tuple[int, int, int] = (2, 2, 1)  # applied on the last unit of each stage
EXPANSION = 4
STEM_CHANNELS = 64


class PreAct(nn.Module):
    """``ReLU(norm(x))`` for methods with an output norm, else ``ReLU(scale * x)``."""

    def __init__(self, method: NormMethod, channels: int, scale: float) -> None:
        super().__init__()
        self.norm = method.norm(channels)
        self.scale = 1.0 if method.normalizes_outputs else float(scale)

    def forward(self, x: Tensor) -> Tensor:
        x = self.norm(x)
        if self.scale != 1.0:
            x = x * self.scale
        return F.relu(x)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class PreActBottleneck(nn.Module):
    """One pre-activation bottleneck unit (see the module docstring)."""

    def __init__(
        self, method: NormMethod, in_channels: int, width: int, stride: int, preact_scale: float
    ) -> None:
        super().__init__()
        out_channels = EXPANSION * width
        self.stride = stride
        self.preact = PreAct(method, in_channels, preact_scale)
        self.conv1 = method.conv_norm(in_channels, width, 1)
        self.conv2 = method.conv_norm(width, width, 3, stride=stride, padding=1)
        self.conv3 = method.conv(width, out_channels, 1)
        self.shortcut = (
            method.conv(in_channels, out_channels, 1, stride=stride) if in_channels != out_channels else None
        )

    def forward(self, x: Tensor) -> Tensor:
        p = self.preact(x)
        residual = self.conv3(F.relu(self.conv2(F.relu(self.conv1(p)))))
        if self.shortcut is not None:
            shortcut = self.shortcut(p)
        elif self.stride > 1:
            shortcut = x[:, :, :: self.stride, :: self.stride]
        else:
            shortcut = x
        return residual + shortcut


class PreActResNetCifar(nn.Module):
    """Pre-activation bottleneck ResNet of depth ``9 * units_per_stage + 2`` (56 by default) for 32x32 inputs.

    ``forward`` maps ``(N, in_channels, H, W)`` to ``(N, num_classes)``; any H, W >= 4 works.
    """

    def __init__(
        self,
        method: NormMethod,
        num_classes: int,
        in_channels: int = 3,
        units_per_stage: int = 6,
        preact_scale: float = 1 / math.sqrt(2),
    ) -> None:
        super().__init__()
        if units_per_stage < 1:
            raise ValueError(f"resnet_cifar units_per_stage must be >= 1, got {units_per_stage!r}")
        if not preact_scale > 0:
            raise ValueError(f"resnet_cifar preact_scale must be > 0, got {preact_scale!r}")
        self.depth = 9 * units_per_stage + 2
        self.stem = nn.Sequential(
            method.conv_norm(in_channels, STEM_CHANNELS, 3, padding=1), nn.ReLU(inplace=True)
        )
        units: list[nn.Module] = []
        channels = STEM_CHANNELS
        for width, stride in zip(STAGE_WIDTHS, STAGE_STRIDES, strict=True):
            stage = [
                PreActBottleneck(
                    method,
                    channels if i == 0 else EXPANSION * width,
                    width,
                    stride if i == units_per_stage - 1 else 1,
                    preact_scale,
                )
                for i in range(units_per_stage)
            ]
            units.append(nn.Sequential(*stage))
            channels = EXPANSION * width
        self.stage1, self.stage2, self.stage3 = units
        self.head_preact = PreAct(method, channels, preact_scale)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.logits = method.conv(channels, num_classes, 1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stage3(self.stage2(self.stage1(self.stem(x))))
        return self.logits(self.pool(self.head_preact(x))).flatten(1)


def resnet_cifar(
    method: NormMethod,
    num_classes: int,
    in_channels: int = 3,
    units_per_stage: int = 6,
    preact_scale: float = 1 / math.sqrt(2),
) -> PreActResNetCifar:
    """Build :class:`PreActResNetCifar` (kwargs: ``in_channels`` = 3, ``units_per_stage`` = 6 (depth
    9n + 2 = 56), ``preact_scale`` = 1/sqrt(2), used only by methods without an output norm)."""
    return PreActResNetCifar(
        method, num_classes, in_channels=in_channels, units_per_stage=units_per_stage,
        preact_scale=preact_scale,
    )
