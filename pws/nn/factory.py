"""One factory for "a conv and its normalization", by method name, used by every model of the project.

The methods (the paper's Tables 1-5), what each builds and its options are the entries of
:data:`pws.nn.methods.METHOD_TABLE` (see :mod:`pws.nn.methods`); :class:`NormMethod` is one entry with
its options. ``METHODS``, ``OPTIONS`` and ``OUTPUT_NORMS`` are views of that table. GroupNorm uses
``gcd(num_groups, channels)`` groups so that narrow layers (16 channels in the CIFAR ResNet) still get a
valid grouping.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from pws.nn.methods import METHOD_TABLE, Method, he_init, method_and_options, method_entry

OPTIONS: dict[str, dict[str, Any]] = {name: dict(m.options) for name, m in METHOD_TABLE.items()}
METHODS: tuple[str, ...] = tuple(METHOD_TABLE)
OUTPUT_NORMS: frozenset[str] = frozenset(name for name, m in METHOD_TABLE.items() if m.normalizes_outputs)

__all__ = ["METHODS", "OPTIONS", "OUTPUT_NORMS", "ConvNorm", "NormMethod", "as_method", "he_init"]


class ConvNorm(nn.Sequential):
    """``conv`` followed by ``norm`` (the norm is absent for methods that do not normalize outputs)."""


class NormMethod:
    """A normalization method with its options, building convs and norms for any model.

    >>> method = NormMethod("pws", gamma=1e-4)
    >>> block = method.conv_norm(3, 64, 3, padding=1)
    """

    def __init__(self, method: str, **options: Any) -> None:
        self.entry: Method = method_entry(method)
        self.method = method
        self.options: dict[str, Any] = self.entry.configure(options)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> NormMethod:
        """The method of a config node ``{"method": name, **options}`` (``norm`` of a run's config, or what
        :meth:`to_config` wrote); ValueError naming what is allowed for an unknown name, option or value."""
        entry, options = method_and_options(config)
        return cls(entry.name, **options)

    def to_config(self) -> dict[str, Any]:
        """``{"method": name, **options}`` with every option (defaults included): :meth:`from_config`
        gives this method back; metrics.json records it."""
        return {"method": self.method, **self.options}

    def mmcv_cfgs(self, *, norm_required: bool = False) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """``(conv_cfg, norm_cfg)`` of this method for mmcv/mmdet configs (:meth:`pws.nn.methods.Method.
        mmcv_cfgs`; ``norm_required``: ``NoNorm`` instead of None, for models that need a norm layer)."""
        return self.entry.mmcv_cfgs(self.options, norm_required=norm_required)

    @property
    def normalizes_outputs(self) -> bool:
        """True for bn, gn, in, ln, sn: a norm layer follows the conv and the conv has no bias."""
        return self.entry.normalizes_outputs

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
        """The method's conv (PWS: eq. 12; WN: ``g V / ||V||``; else a plain He-initialized conv);
        ``bias`` defaults to "no bias if an output norm follows"."""
        if bias is None:
            bias = not self.normalizes_outputs
        args = (in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        return self.entry.conv(*args, options=self.options)

    def norm(self, num_features: int) -> nn.Module:
        """The method's output normalization over ``num_features`` channels (Identity if it has none)."""
        return self.entry.norm(num_features, self.options)

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


def as_method(method: NormMethod | str | Mapping[str, Any]) -> NormMethod:
    """Accept a NormMethod, a method name, or a mapping ``{"method": name, **options}`` (a Hydra node)."""
    if isinstance(method, NormMethod):
        return method
    return NormMethod.from_config({"method": method} if isinstance(method, str) else method)
