"""The normalization methods of the paper (Tables 1-5), one :class:`Method` entry each.

Everything the project knows about a method is in its entry of :data:`METHOD_TABLE`, and every consumer
reads it from there: the factory (:mod:`pws.nn.factory`), :func:`pws.nn.convert`, :func:`pws.nn.fold`, the
variance probe (:mod:`pws.diagnostics.probe`) and the mmdet side (:func:`mmcv_cfgs`, the registration of
:mod:`pws.detect.registry`). Adding a method is adding an entry (and its ``configs/norm/<name>.yaml``);
the tests of ``tests/test_factory.py`` run over the table, so a new entry is tested by them at once.

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

Methods that normalize the outputs (bn, gn, in, ln, sn) get a bias-free conv and pass their options to the
norm; the others (none, wn, pws) keep the conv bias (beta) and pass their options to the conv.

The kernel a conv convolves with is asked of the layer, the same way for every method: a conv that
computes its kernel from its parameters (PWS, WN) is a :class:`ReparametrizedConv` and returns it from
``effective_weight()``; a plain conv convolves with its ``weight``.

This module names the mmcv/mmdet layers of a method as plain strings (it imports nothing of mmcv): the
classes behind the names are in :mod:`pws.detect.layers`, registered by :mod:`pws.detect.registry`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from torch import Tensor, nn

from pws.nn.group_norm import GroupNorm2d
from pws.nn.instance_norm import InstanceNorm2d
from pws.nn.pws_conv import AUTO_GAMMA, PWSConv2d, validate_pws_options
from pws.nn.switchable_norm import SwitchNorm2d
from pws.nn.weight_norm import WNConv2d

# mmcv's own norm layers (``build_norm_layer`` knows them without the project's registry).
MMCV_OWN_LAYERS: frozenset[str] = frozenset({"BN"})
# The norm of methods without an output norm, for mmdet models that cannot build without one.
MMCV_NO_NORM = "NoNorm"


@runtime_checkable
class ReparametrizedConv(Protocol):
    """A conv whose kernel is a function of its parameters, recomputed at every forward.

    ``effective_weight()`` is the kernel it convolves with: ``alpha_o W_hat_o`` of eq. (12) for PWS,
    ``g_o V_o / ||V_o||`` for WN (the paper's WN, whose variance is eq. 9). A plain ``nn.Conv2d`` is not
    one: its kernel is ``weight``.
    """

    def effective_weight(self) -> Tensor: ...


@runtime_checkable
class StandardizedConv(ReparametrizedConv, Protocol):
    """A conv that standardizes its kernel per filter with ``1 / sqrt(Var[W_o] + gamma)`` (eq. 12).

    ``standardization_gamma()`` is the constant added to ``Var[W_o]`` (after PWS's ``gamma_mode``).
    """

    def standardization_gamma(self) -> float: ...


def he_init(conv: nn.Conv2d) -> None:
    """He (kaiming) normal init, fan-in, ReLU gain; zero bias (He et al. 2015, used for every baseline)."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def plain_conv(*args: Any, **kwargs: Any) -> nn.Conv2d:
    """A plain ``nn.Conv2d`` (``Y = W * X + b``) with :func:`he_init`: the conv of none, bn, gn, in, ln,
    sn."""
    conv = nn.Conv2d(*args, **kwargs)
    he_init(conv)
    return conv


def _batch_norm(num_features: int, *, eps: float, momentum: float) -> nn.Module:
    """BatchNorm2d: ``(Y - mu_B) / sqrt(sigma_B^2 + eps)`` per channel over the batch, then affine."""
    return nn.BatchNorm2d(num_features, eps=eps, momentum=momentum)


def _group_norm(num_features: int, *, num_groups: int, eps: float) -> nn.Module:
    """GroupNorm with ``gcd(num_groups, channels)`` groups (:class:`pws.nn.group_norm.GroupNorm2d`)."""
    return GroupNorm2d(num_features, num_groups=num_groups, eps=eps)


def _instance_norm(num_features: int, *, eps: float) -> nn.Module:
    """InstanceNorm2d with an affine scale and shift (statistics per sample and channel; a 1x1 map gives
    the shift, :class:`pws.nn.instance_norm.InstanceNorm2d`)."""
    return InstanceNorm2d(num_features, eps=eps, affine=True)


def _layer_norm(num_features: int, *, eps: float) -> nn.Module:
    """LayerNorm over (C, H, W) of a feature map: GroupNorm with one group."""
    return nn.GroupNorm(1, num_features, eps=eps)


def _switch_norm(num_features: int, *, eps: float, momentum: float) -> nn.Module:
    """Switchable Normalization (IN, LN and BN statistics mixed with learned weights)."""
    return SwitchNorm2d(num_features, eps=eps, momentum=momentum)


def _check_pws(options: Mapping[str, Any]) -> None:
    validate_pws_options(
        gamma=options["gamma"],
        gamma_mode=options["gamma_mode"],
        alpha_init=options["alpha_init"],
        learn_alpha=options["learn_alpha"],
    )


def _check_gn(options: Mapping[str, Any]) -> None:
    if int(options["num_groups"]) < 1:
        raise ValueError(f"gn num_groups must be >= 1, got {options['num_groups']!r}")


def _frozen(mapping: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Method:
    """One normalization method: what it builds, its options, and how mmcv/mmdet and the probe name it.

    * ``options``: the options and their defaults. They go to ``build_norm`` when the method has an output
      norm, else to ``build_conv``; their default's type is their type (mmcv configs are cast to it).
    * ``conv_class``: the class of the conv the method builds; ``build_conv`` builds it from
      ``nn.Conv2d``'s positional arguments ``(in, out, k, stride, padding, dilation, groups, bias)`` and
      the options (default: ``conv_class`` itself).
    * ``build_norm``: ``(num_features, **options) -> norm``; None for the methods without an output norm.
    * ``check``: raises ValueError for bad option values (after the defaults are filled in).
    * ``kind``: the probe's name for the method's conv (``pws``, ``wn``; ``conv`` for a plain conv).
    * ``mmcv_conv``, ``mmcv_norm``: the registry names of the method's layers in mmcv/mmdet configs;
      ``mmcv_norm_options``: constant arguments of the norm there.
    """

    name: str
    summary: str
    conv_class: type[nn.Conv2d]
    kind: str
    mmcv_conv: str
    options: Mapping[str, Any] = field(default_factory=_frozen)
    build_conv: Callable[..., nn.Conv2d] | None = None
    build_norm: Callable[..., nn.Module] | None = None
    check: Callable[[Mapping[str, Any]], None] | None = None
    mmcv_norm: str | None = None
    mmcv_norm_options: Mapping[str, Any] = field(default_factory=_frozen)

    @property
    def normalizes_outputs(self) -> bool:
        """True when a norm layer follows the conv (and the conv has no bias: beta lives in the norm)."""
        return self.build_norm is not None

    def configure(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The defaults updated with ``options``; ValueError naming unknown options or bad values."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            allowed = ", ".join(self.options) or "none"
            raise ValueError(f"unknown option(s) {unknown} for method {self.name!r}; allowed: {allowed}")
        full = {**self.options, **options}
        if self.check is not None:
            self.check(full)
        return full

    def conv(self, *args: Any, options: Mapping[str, Any]) -> nn.Conv2d:
        """The method's conv from ``nn.Conv2d``'s positional arguments and the (configured) options."""
        build = self.build_conv or self.conv_class
        return build(*args, **({} if self.normalizes_outputs else dict(options)))

    def norm(self, num_features: int, options: Mapping[str, Any]) -> nn.Module:
        """The method's output norm over ``num_features`` channels (Identity if it has none)."""
        if self.build_norm is None:
            return nn.Identity()
        return self.build_norm(num_features, **options)

    def mmcv_cfgs(
        self, options: Mapping[str, Any], *, norm_required: bool = False
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """``(conv_cfg, norm_cfg)`` for mmcv's ``build_conv_layer`` / ``build_norm_layer`` (plain dicts).

        The options go to the norm when there is one, else to the conv, which then also gets
        ``force_bias=True`` (the beta of eq. 12 even where mmdet asks for ``bias=False``). Without an
        output norm the norm_cfg is None, or ``NoNorm`` when ``norm_required``.
        """
        typed = {k: v if v == AUTO_GAMMA else type(self.options[k])(v) for k, v in options.items()}
        if self.normalizes_outputs:
            return {"type": self.mmcv_conv}, {"type": self.mmcv_norm, **typed, **self.mmcv_norm_options}
        return {"type": self.mmcv_conv, **typed, "force_bias": True}, (
            {"type": MMCV_NO_NORM} if norm_required else None
        )

    @property
    def mmcv_layers(self) -> tuple[str, ...]:
        """The registry names this method's mmcv configs use."""
        return (self.mmcv_conv,) + ((self.mmcv_norm,) if self.mmcv_norm else ())


_PLAIN = {"conv_class": nn.Conv2d, "build_conv": plain_conv, "kind": "conv", "mmcv_conv": "HeConv"}
_EPS = {"eps": 1e-5}
_EPS_MOMENTUM = {"eps": 1e-5, "momentum": 0.1}

METHOD_TABLE: Mapping[str, Method] = MappingProxyType({
    m.name: m
    for m in (
        Method("none", "plain conv with bias, He init", **_PLAIN),
        Method(
            "bn", "conv (no bias, He init) + BatchNorm2d", **_PLAIN, options=_frozen(_EPS_MOMENTUM),
            build_norm=_batch_norm, mmcv_norm="BN",
        ),
        Method(
            "gn", "conv + GroupNorm", **_PLAIN, options=_frozen({"num_groups": 32, **_EPS}),
            build_norm=_group_norm, check=_check_gn, mmcv_norm="GN2d",
        ),
        Method(
            "in", "conv + InstanceNorm2d (affine)", **_PLAIN, options=_frozen(_EPS),
            build_norm=_instance_norm, mmcv_norm="IN2d", mmcv_norm_options=_frozen({"affine": True}),
        ),
        Method(
            "ln", "conv + GroupNorm with one group (LN over C, H, W)", **_PLAIN, options=_frozen(_EPS),
            build_norm=_layer_norm, mmcv_norm="LN2d",
        ),
        Method(
            "sn", "conv + Switchable Normalization", **_PLAIN, options=_frozen(_EPS_MOMENTUM),
            build_norm=_switch_norm, mmcv_norm="SN",
        ),
        Method(
            "wn", 'WNConv2d, g initialized to 1 ("WN (g = 1)")', conv_class=WNConv2d, kind="wn",
            mmcv_conv="WN", options=_frozen({"g_init": 1.0}),
        ),
        Method(
            "pws", "PWSConv2d, eq. (12)", conv_class=PWSConv2d, kind="pws", mmcv_conv="PWS",
            options=_frozen({
                "gamma": 1e-3,
                "fan_in_scale": True,
                "learn_alpha": True,
                "gamma_mode": "var",
                "alpha_init": "ones",
            }),
            check=_check_pws,
        ),
    )
})  # fmt: skip


def method_entry(name: str) -> Method:
    """The table's entry for ``name``; ValueError listing the methods for an unknown name."""
    try:
        return METHOD_TABLE[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown normalization method {name!r}; choose one of {', '.join(METHOD_TABLE)}"
        ) from None


@runtime_checkable
class ConfiguredMethod(Protocol):
    """A method with its options, such as :class:`pws.nn.NormMethod`."""

    method: str
    options: Mapping[str, Any]


def method_and_options(
    method: ConfiguredMethod | str | Mapping[str, Any],
) -> tuple[Method, dict[str, Any]]:
    """The table entry and the full options of a method given as a name, a mapping ``{"method": name,
    **options}`` (a Hydra node) or a configured method; ValueError for unknown names, options or values."""
    if isinstance(method, str):
        name, options = method, {}
    elif isinstance(method, Mapping):
        options = dict(method)
        if "method" not in options:
            raise ValueError(
                f"a normalization config needs a 'method' key (one of {', '.join(METHOD_TABLE)}), "
                f"got {options}"
            )
        name = options.pop("method")
    elif isinstance(method, ConfiguredMethod):
        name, options = method.method, dict(method.options)
    else:
        raise TypeError(f"a normalization method is a name, a mapping or a NormMethod, got {method!r}")
    entry = method_entry(name)
    return entry, entry.configure(options)


def mmcv_cfgs(
    method: ConfiguredMethod | str | Mapping[str, Any], *, norm_required: bool = False
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``(conv_cfg, norm_cfg)`` of a normalization method for mmcv/mmdet configs (see
    :meth:`Method.mmcv_cfgs`).

    ``norm_required``: return ``NoNorm`` instead of ``None`` for the methods without an output norm, for
    models that cannot build without a norm layer (mmdet's ResNet).
    """
    entry, options = method_and_options(method)
    return entry.mmcv_cfgs(options, norm_required=norm_required)


def conv_kind(conv: nn.Module) -> str:
    """The table's ``kind`` of a conv layer: that of the method whose ``conv_class`` is the nearest class in
    the layer's MRO (``pws``, ``wn``; ``conv`` for a plain or any other conv)."""
    for cls in type(conv).__mro__:
        for entry in METHOD_TABLE.values():
            if entry.conv_class is cls:
                return entry.kind
    return "conv"


# The conv classes the methods build (what :func:`pws.nn.convert` replaces).
CONV_CLASSES: frozenset[type[nn.Conv2d]] = frozenset(m.conv_class for m in METHOD_TABLE.values())
