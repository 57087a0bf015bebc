"""The classification networks of Tables 4 and 5, by name: one entry point for the classification app.

=============  ==============================================  =====  ========================================
name           network                                         input  kwargs (defaults)
=============  ==============================================  =====  ========================================
plain_c        ConvPool-CNN-C without dropout (Table 4,         32x32  in_channels (3), width (1.0)
               "Plain")
resnet_cifar   pre-activation bottleneck ResNet-56 (Table 4,    32x32  in_channels (3), units_per_stage (6),
               "Residual")                                             preact_scale (1/sqrt(2))
resnet50       ImageNet ResNet-50; LN at input and output for   224    in_channels (3), io_norm (None: on
               none/wn/pws (Table 5)                                   for none/wn/pws)
=============  ==============================================  =====  ========================================

Each model lives in its own module (:mod:`pws.models.plain_c`, :mod:`pws.models.resnet_cifar`,
:mod:`pws.models.resnet50`) whose docstring gives the exact layout and where it follows or leaves the
authors' code. Every conv and norm comes from the :class:`pws.nn.NormMethod` passed in.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from pws.models.plain_c import plain_c
from pws.models.resnet50 import resnet50
from pws.models.resnet_cifar import resnet_cifar
from pws.nn.factory import NormMethod, as_method

CLASSIFIERS: dict[str, Callable[..., nn.Module]] = {
    "plain_c": plain_c,
    "resnet_cifar": resnet_cifar,
    "resnet50": resnet50,
}


def classifier_options(name: str) -> dict[str, Any]:
    """The kwargs model ``name`` accepts, with their defaults."""
    _check_name(name)
    params = list(inspect.signature(CLASSIFIERS[name]).parameters.values())[2:]  # after method, num_classes
    return {p.name: p.default for p in params}


def build_classifier(
    name: str, method: NormMethod | str | Mapping[str, Any], num_classes: int, **kwargs: Any
) -> nn.Module:
    """Build classifier ``name`` with every conv and norm from ``method``; its output is ``(N, num_classes)``.

    ``method`` is a :class:`pws.nn.NormMethod` (a method name or a ``{"method": ..., **options}`` mapping is
    accepted too). ``kwargs`` are the model's options, see the table in this module's docstring
    (``in_channels`` for all). An unknown name or option raises ``ValueError`` naming what is allowed.
    """
    allowed = classifier_options(name)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for model {name!r}; allowed: {', '.join(allowed)}"
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    return CLASSIFIERS[name](as_method(method), num_classes, **kwargs)


def _check_name(name: str) -> None:
    if name not in CLASSIFIERS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(CLASSIFIERS)}")
