"""One factory for "a conv and its normalization", by method name, used by every model of the project.

Methods (the paper's Tables 1-5):

=======  =====================================================  ==============================
method   what it builds                                          options (defaults)
=======  =====================================================  ==============================
none     plain conv with bias, He init                            --
bn       conv (no bias, He init) + BatchNorm2d                   eps (1e-5), momentum (0.1)
gn       conv + GroupNorm                                        num_groups (32), eps (1e-5)
in       conv + InstanceNorm2d (affine)                          eps (1e-5)
ln       conv + GroupNorm with one group (LN over C, H, W)       eps (1e-5)
sn       conv + Switchable Normalization                         eps (1e-5), momentum (0.1)
wn       WNConv2d, g initialized to 1 ("WN (g = 1)")             g_init (1.0)
pws      PWSConv2d, eq. (12)                                     gamma (1e-3), fan_in_scale (True),
                                                                  learn_alpha (True), gamma_mode
                                                                  ("var"), alpha_init ("ones")
=======  =====================================================  ==============================

Methods that normalize the outputs (bn, gn, in, ln, sn) get a bias-free conv; the others (none, wn, pws)
keep the conv bias (beta) and have no output norm. GroupNorm uses ``gcd(num_groups, channels)`` groups so
that narrow layers (16 channels in the CIFAR ResNet) still get a valid grouping.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from torch import nn

from pws.nn.pws_conv import PWSConv2d, validate_pws_options
from pws.nn.switchable_norm import SwitchNorm2d
from pws.nn.weight_norm import WNConv2d

OPTIONS: dict[str, dict[str, Any]] = {
    "none": {},
    "bn": {"eps": 1e-5, "momentum": 0.1},
    "gn": {"num_groups": 32, "eps": 1e-5},
    "in": {"eps": 1e-5},
    "ln": {"eps": 1e-5},
    "sn": {"eps": 1e-5, "momentum": 0.1},
    "wn": {"g_init": 1.0},
    "pws": {
        "gamma": 1e-3,
        "fan_in_scale": True,
        "learn_alpha": True,
        "gamma_mode": "var",
        "alpha_init": "ones",
    },
}
METHODS: tuple[str, ...] = tuple(OPTIONS)
OUTPUT_NORMS: frozenset[str] = frozenset({"bn", "gn", "in", "ln", "sn"})


class ConvNorm(nn.Sequential):
    """``conv`` followed by ``norm`` (the norm is absent for methods that do not normalize outputs)."""


class NormMethod:
    """A normalization method with its options, building convs and norms for any model.

    >>> method = NormMethod("pws", gamma=1e-4)
    >>> block = method.conv_norm(3, 64, 3, padding=1)
    """

    def __init__(self, method: str, **options: Any) -> None:
        if method not in OPTIONS:
            raise ValueError(f"unknown normalization method {method!r}; choose one of {', '.join(METHODS)}")
        unknown = sorted(set(options) - set(OPTIONS[method]))
        if unknown:
            allowed = ", ".join(OPTIONS[method]) or "none"
            raise ValueError(f"unknown option(s) {unknown} for method {method!r}; allowed: {allowed}")
        self.method = method
        self.options: dict[str, Any] = {**OPTIONS[method], **options}
        if method == "pws":
            validate_pws_options(
                gamma=self.options["gamma"],
                gamma_mode=self.options["gamma_mode"],
                alpha_init=self.options["alpha_init"],
                learn_alpha=self.options["learn_alpha"],
            )
        if method == "gn" and int(self.options["num_groups"]) < 1:
            raise ValueError(f"gn num_groups must be >= 1, got {self.options['num_groups']!r}")

    @property
    def normalizes_outputs(self) -> bool:
        """True for bn, gn, in, ln, sn: a norm layer follows the conv and the conv has no bias."""
        return self.method in OUTPUT_NORMS

    def conv(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool | None = None,
    ) -> nn.Conv2d:
        """The method's conv; ``bias`` defaults to "no bias if an output norm follows"."""
        if bias is None:
            bias = not self.normalizes_outputs
        args = (in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        if self.method == "pws":
            return PWSConv2d(*args, **self.options)
        if self.method == "wn":
            return WNConv2d(*args, **self.options)
        conv = nn.Conv2d(*args)
        he_init(conv)
        return conv

    def norm(self, num_features: int) -> nn.Module:
        """The method's output normalization over ``num_features`` channels (Identity if it has none)."""
        o = self.options
        if self.method == "bn":
            return nn.BatchNorm2d(num_features, eps=o["eps"], momentum=o["momentum"])
        if self.method == "gn":
            return nn.GroupNorm(math.gcd(int(o["num_groups"]), num_features), num_features, eps=o["eps"])
        if self.method == "in":
            return nn.InstanceNorm2d(num_features, eps=o["eps"], affine=True)
        if self.method == "ln":
            return nn.GroupNorm(1, num_features, eps=o["eps"])
        if self.method == "sn":
            return SwitchNorm2d(num_features, eps=o["eps"], momentum=o["momentum"])
        return nn.Identity()

    def conv_norm(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
    ) -> ConvNorm:
        """``conv`` then ``norm`` as one module (no norm child for none, wn, pws)."""
        block = ConvNorm()
        block.add_module(
            "conv", self.conv(in_channels, out_channels, kernel_size, stride, padding, dilation, groups)
        )
        if self.normalizes_outputs:
            block.add_module("norm", self.norm(out_channels))
        return block

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"NormMethod({self.method!r}{', ' if opts else ''}{opts})"


def he_init(conv: nn.Conv2d) -> None:
    """He (kaiming) normal init, fan-in, ReLU gain; zero bias (He et al. 2015, used for every baseline)."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def as_method(method: NormMethod | str | Mapping[str, Any]) -> NormMethod:
    """Accept a NormMethod, a method name, or a mapping ``{"method": name, **options}`` (a Hydra node)."""
    if isinstance(method, NormMethod):
        return method
    if isinstance(method, str):
        return NormMethod(method)
    options = dict(method)
    if "method" not in options:
        raise ValueError(
            f"a normalization config needs a 'method' key (one of {', '.join(METHODS)}), got {options}"
        )
    return NormMethod(options.pop("method"), **options)
