"""The project's convs and norms in the shape mmcv's ``build_conv_layer`` / ``build_norm_layer`` call them.

These are thin subclasses of the layers of :mod:`pws.nn` (same math, same parameters, same init); what they
add is what mmcv/mmengine need:

* the constructor signature mmcv uses (``in, out, k, stride=, padding=, dilation=, groups=, bias=`` for
  convs, ``num_features, eps=, ...`` for norms);
* ``force_bias=True``: keep the conv bias (the paper's beta_o) even where the model asks for ``bias=False``
  (mmdet's ResNet builds every conv with ``bias=False`` because a BN follows; without a norm, beta is part of
  eq. (12));
* ``init_weights()``: the layers are initialized at construction (He normal, fan-in, ReLU gain; alpha = 1,
  beta = 0, g = 1), exactly as in :mod:`pws.nn`. mmcv's ``ConvModule`` re-initializes a conv with
  ``kaiming_init(mode='fan_out')`` unless the conv has its own ``init_weights``, and mmengine's
  ``init_cfg`` entries such as ``dict(type='Kaiming', layer='Conv2d')`` match a module by its class name and
  its *direct* base classes: the registered classes below derive from ``PWSConv2d`` / ``WNConv2d`` /
  ``HeConv2d``, not directly from ``nn.Conv2d``, so neither re-initializes them.

:data:`LAYERS` maps the registry names that the method table (:data:`pws.nn.methods.METHOD_TABLE`,
``mmcv_conv`` / ``mmcv_norm``) uses to these classes (``'PWS'``, ``'WN'``, ``'HeConv'``, ``'SN'``,
``'LN2d'``, ``'IN2d'``, ``'GN2d'``, ``'NoNorm'``); :mod:`pws.detect.registry` registers them. This module
needs only torch.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from pws.nn.group_norm import GroupNorm2d
from pws.nn.instance_norm import InstanceNorm2d
from pws.nn.methods import MMCV_NO_NORM, he_init
from pws.nn.pws_conv import PWSConv2d
from pws.nn.switchable_norm import SwitchNorm2d
from pws.nn.weight_norm import WNConv2d

_BIAS_POSITION = 7  # nn.Conv2d(in, out, k, stride, padding, dilation, groups, bias, ...)


def _with_bias(args: tuple[Any, ...], kwargs: dict[str, Any], force_bias: bool) -> tuple[Any, ...]:
    """Set the conv's ``bias`` argument to True when ``force_bias`` (positional or keyword)."""
    if force_bias:
        if len(args) > _BIAS_POSITION:
            args = (*args[:_BIAS_POSITION], True, *args[_BIAS_POSITION + 1 :])
        else:
            kwargs["bias"] = True
    return args


class _OwnInit:
    """Marks a layer as initialized by its own constructor (mmcv's ConvModule then leaves it alone)."""

    def init_weights(self) -> None:
        """No-op: the constructor already applied the project's init (He fan-in; alpha = 1, beta = 0)."""


class HeConv2d(nn.Conv2d):
    """A plain ``nn.Conv2d`` with He normal init (fan-in, ReLU gain) and zero bias: the project's plain conv
    (``pws.nn.NormMethod('none' | 'bn' | ...).conv``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        he_init(self)


class HeConv(_OwnInit, HeConv2d):
    """Registered as ``'HeConv'``: the plain conv of methods none, bn, gn, in, ln, sn."""

    def __init__(self, *args: Any, force_bias: bool = False, **kwargs: Any) -> None:
        super().__init__(*_with_bias(args, kwargs, force_bias), **kwargs)


class PWS(_OwnInit, PWSConv2d):
    """Registered as ``'PWS'``: :class:`pws.nn.PWSConv2d` (eq. 12); options ``gamma``, ``fan_in_scale``,
    ``learn_alpha``, ``gamma_mode``, ``alpha_init`` as there, plus ``force_bias``."""

    def __init__(self, *args: Any, force_bias: bool = False, **kwargs: Any) -> None:
        super().__init__(*_with_bias(args, kwargs, force_bias), **kwargs)


class WN(_OwnInit, WNConv2d):
    """Registered as ``'WN'``: :class:`pws.nn.WNConv2d` (weight normalization, g initialized to ``g_init``),
    plus ``force_bias``."""

    def __init__(self, *args: Any, force_bias: bool = False, **kwargs: Any) -> None:
        super().__init__(*_with_bias(args, kwargs, force_bias), **kwargs)


class SN(SwitchNorm2d):
    """Registered as ``'SN'``: :class:`pws.nn.SwitchNorm2d` (Switchable Normalization)."""

    _abbr_ = "sn"  # mmcv names the layer <abbr><postfix> (e.g. ResNet's sn1)


class LN2d(nn.GroupNorm):
    """Registered as ``'LN2d'``: LayerNorm over (C, H, W) of a feature map, i.e. GroupNorm with one group
    (the factory's ``ln``; mmcv's ``'LN'`` is ``nn.LayerNorm`` over the last dimension only)."""

    _abbr_ = "ln"

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__(1, num_features, eps=eps, affine=affine)


class NoNorm(nn.Identity):
    """Registered as ``'NoNorm'``: "no normalization" for models that insist on a norm layer (mmdet's ResNet
    fails with ``norm_cfg=None``). Holds no parameters; accepts and ignores the norm arguments."""

    _abbr_ = "nonorm"

    def __init__(self, num_features: int, **kwargs: Any) -> None:
        super().__init__()
        self.num_features = num_features

    def extra_repr(self) -> str:
        return f"{self.num_features}"


# Registry name -> class, for every name of the method table that is not one of mmcv's own layers.
LAYERS: dict[str, type[nn.Module]] = {
    "PWS": PWS,
    "WN": WN,
    "HeConv": HeConv,
    "SN": SN,
    "LN2d": LN2d,
    "IN2d": InstanceNorm2d,  # defined on a 1x1 map (mmcv's 'IN', PyTorch's, refuses one in training)
    "GN2d": GroupNorm2d,  # gcd(num_groups, C) groups (mmcv's 'GN' fails where 32 does not divide C)
    MMCV_NO_NORM: NoNorm,
}
