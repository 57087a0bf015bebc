"""One config schema for what every app shares, checked the same way in every app.

* :class:`Validator` reads dotted keys of the composed config and collects *every* problem into one
  :class:`~pws.engine.errors.ConfigError` (one line per problem, naming the key and what is allowed);
* :func:`common_values` checks the keys both apps have (seed, force, the EMA option, wandb, the table
  cell), :func:`sgd_values` the optimizer (``optim.*``; for each key a null falls back to a default
  section, detection's schedule: one precedence rule, explicit key first);
* :func:`check_known_keys` refuses a key the configs do not know (``+optim.lrr=0.1``, ``train.devce=cpu``),
  as a misspelt one, naming the closest known key.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pws.engine.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
SEED_MAX = 2**32 - 1
WANDB_MODES = ("online", "offline", "disabled")
# train.compile: torch.compile's modes, given to mmengine's Runner (``compile=dict(mode=...)``); null = eager.
# reduce-overhead records CUDA graphs of the compiled step (no launch overhead per layer).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def common_values(v: Validator) -> dict[str, Any]:
    """The values every app takes: ``seed`` (0 .. 2**32 - 1), ``force``, ``ema.*`` (the authors' weight
    average, :mod:`pws.engine.ema`), ``wandb.mode``, table/row/cell, and the speed options
    ``train.fused_pws`` (:func:`pws.nn.fuse_standardization` on the built network) and ``train.compile``
    (null or one of :data:`COMPILE_MODES`; eager-only fusion and compile exclude each other), and
    ``train.sync_bn`` (several processes: BN over the total batch, not each process's part)."""
    seed = v.integer("seed", minimum=0)
    if seed is not None and seed > SEED_MAX:
        v.fail(f"seed must be <= {SEED_MAX}, got {seed}")
    mode = v.string("wandb.mode")
    if mode is not None and mode not in WANDB_MODES:
        v.fail(f"wandb.mode must be one of {', '.join(WANDB_MODES)}, got {mode!r}")
    ema_enabled = v.boolean("ema.enabled")
    ema_decay = v.number("ema.decay", minimum=0.0, below=1.0)
    fused_pws = v.boolean("train.fused_pws")
    compile_mode = v.string("train.compile", optional=True)
    if compile_mode is not None and compile_mode not in COMPILE_MODES:
        v.fail(f"train.compile must be null (eager) or one of {', '.join(COMPILE_MODES)}, "
               f"got {compile_mode!r}")
        compile_mode = None
    if fused_pws and compile_mode is not None:
        v.fail("train.fused_pws=true is for eager mode (its kernels are kept between calls, outside the "
               "graph): with train.compile set, leave train.fused_pws=false (the compiler fuses the "
               "per-layer path)")
    return {
        "seed": seed,
        "ema_decay": ema_decay if ema_enabled else None,
        "ema_warmup": v.boolean("ema.warmup"),
        "force": v.boolean("force"),
        "wandb_mode": mode,
        "table": v.string("table", optional=True),
        "row": v.string("row", optional=True),
        "cell": v.string("cell", optional=True),
        "fused_pws": bool(fused_pws),
        "compile": compile_mode,
        "sync_bn": bool(v.boolean("train.sync_bn")),
    }


@dataclass(frozen=True)
class SGD:
    """SGD with momentum, the optimizer of every table of the paper (PWS's alpha is never decayed: the apps
    pass :func:`pws.optim.mmengine_paramwise_cfg`)."""

    lr: float
    momentum: float
    weight_decay: float
    nesterov: bool

    def optimizer(self) -> dict[str, Any]:
        """mmengine's ``optim_wrapper.optimizer`` entry."""
        return dict(type="SGD", lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
                    nesterov=self.nesterov)  # fmt: skip


def sgd_values(v: Validator) -> SGD | None:
    """``optim.{lr,momentum,weight_decay,nesterov}`` checked (the scale's or schedule's value where the group
    file interpolates it). None if invalid."""
    name = v.string("optim.name")
    if name is not None and name != "sgd":
        v.fail(f"optim.name must be sgd (the paper's optimizer), got {name!r}")
    lr = v.number("optim.lr", above=0.0)
    momentum = v.number("optim.momentum", minimum=0.0, below=1.0)
    weight_decay = v.number("optim.weight_decay", minimum=0.0)
    nesterov = v.boolean("optim.nesterov")
    if nesterov and momentum == 0:
        v.fail("optim.nesterov=true needs optim.momentum > 0")
    if None in (lr, momentum, weight_decay, nesterov):
        return None
    return SGD(lr, momentum, weight_decay, nesterov)


def _flat_keys(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            name = f"{prefix}{key}"
            yield name
            yield from _flat_keys(value, name + ".")


def known_keys(app: str, config_dir: Path = CONFIG_DIR) -> set[str]:
    """Every dotted key that the primary config ``app`` or any option of a config group defines."""
    import yaml

    known: set[str] = set()
    primary = yaml.safe_load((config_dir / f"{app}.yaml").read_text()) or {}
    known.update(_flat_keys({k: v for k, v in primary.items() if k not in ("defaults", "hydra")}))
    for group in sorted(p for p in config_dir.iterdir() if p.is_dir() and p.name != "hydra"):
        for option in group.glob("*.yaml"):
            body = yaml.safe_load(option.read_text()) or {}
            known.add(group.name)
            known.update(_flat_keys(body, f"{group.name}."))
    return known


def override_key(override: str) -> str | None:
    """The dotted key a command-line override sets (``key=v``, ``+key=v``, ``++key=v``); None for what is not
    a key of the app's configs: a flag, a deletion (``~key``), Hydra's own settings, a package (``@``)."""
    if override.startswith(("-", "~")) or "=" not in override:
        return None
    key = override.lstrip("+").split("=", 1)[0]
    if key == "hydra" or key.startswith(("hydra.", "hydra/")) or "@" in key:
        return None
    return key


def check_known_keys(app: str, overrides: list[str]) -> None:
    """Refuse an override whose key no config defines, however it is spelt: ``+optim.lrr=0.1`` (the typo
    that Hydra would add and the app ignore) and ``train.device=cpu`` to an app without that key (which
    Hydra refuses in its own words), both as one :class:`ConfigError` naming the closest known key."""
    known = known_keys(app)
    unknown = []
    for override in overrides:
        key = override_key(override)
        if key is not None and key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            unknown.append(f"{key} is not a key of any {app} config{hint}")
    if unknown:
        lines = "\n".join(f"  - {e}" for e in unknown)
        raise ConfigError(f"invalid configuration ({len(unknown)} problem(s)):\n{lines}")


def plain(cfg: DictConfig | dict[str, Any]) -> dict[str, Any]:
    """The composed config as plain containers, interpolations resolved (a failing one is a ConfigError)."""
    if not isinstance(cfg, DictConfig):
        return dict(cfg)
    try:
        out = OmegaConf.to_container(cfg, resolve=True)
    except Exception as e:  # an interpolation that cannot resolve
        raise ConfigError(f"invalid configuration: {e}") from e
    assert isinstance(out, dict)
    return out


def is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


MISSING = object()


class Validator:
    """Reads dotted keys from a plain dict, collecting one message per invalid value."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.errors: list[str] = []

    def fail(self, message: str) -> None:
        self.errors.append(message)

    def raise_if_failed(self) -> None:
        if self.errors:
            lines = "\n".join(f"  - {e}" for e in self.errors)
            raise ConfigError(f"invalid configuration ({len(self.errors)} problem(s)):\n{lines}")

    def get(self, key: str) -> Any:
        node: Any = self.cfg
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return MISSING
            node = node[part]
        return node

    def section(self, key: str) -> dict[str, Any]:
        value = self.get(key)
        if not isinstance(value, dict):
            self.fail(f"{key} must be a config group (got {value!r})")
            return {}
        return value

    def _present(self, key: str, optional: bool) -> tuple[str, Any]:
        """``(key, value)`` when the value is set; when it is null or absent: ``(key, None)`` if
        ``optional``, else ``(key, MISSING)`` after recording why."""
        value = self.get(key)
        if value is not MISSING and value is not None:
            return key, value
        if optional:  # null or absent
            return key, None
        why = "is missing from the config" if value is MISSING else "must be set (got null)"
        self.fail(f"{key} {why}")
        return key, MISSING

    def string(self, key: str, optional: bool = False) -> Any:
        key, value = self._present(key, optional)
        if value is MISSING or value is None:
            return None
        if not isinstance(value, str) or not value:
            self.fail(f"{key} must be a non-empty string, got {value!r}")
            return None
        return value

    def boolean(self, key: str) -> Any:
        key, value = self._present(key, False)
        if value is MISSING:
            return None
        if not isinstance(value, bool):
            self.fail(f"{key} must be true or false, got {value!r}")
            return None
        return value

    def integer(
        self, key: str, minimum: int | None = None, optional: bool = False, default: Any = None
    ) -> Any:
        """An integer >= ``minimum``; null allowed when ``optional`` or a ``default`` is given (returned)."""
        key, value = self._present(key, optional or default is not None)
        if value is None:
            return default
        if value is MISSING:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f"{key} must be an integer, got {value!r}")
            return None
        if minimum is not None and value < minimum:
            self.fail(f"{key} must be >= {minimum}, got {value}")
            return None
        return value

    def number(
        self,
        key: str,
        minimum: float | None = None,
        above: float | None = None,
        maximum: float | None = None,
        below: float | None = None,
        optional: bool = False,
        default: Any = None,
    ) -> Any:
        """A finite number within the bounds given; null allowed when ``optional`` or a ``default`` is given
        (then returned)."""
        key, value = self._present(key, optional or default is not None)
        if value is None:
            return default
        if value is MISSING:
            return None
        if not is_number(value) or not math.isfinite(value):
            self.fail(f"{key} must be a finite number, got {value!r}")
            return None
        value = float(value)
        bounds = [
            (minimum, ">=", value < (minimum or 0.0)),
            (above, ">", value <= (above or 0.0)),
            (maximum, "<=", value > (maximum or 0.0)),
            (below, "<", value >= (below or 0.0)),
        ]
        broken = [f"{op} {bound:g}" for bound, op, bad in bounds if bound is not None and bad]
        if broken:
            self.fail(f"{key} must be {' and '.join(broken)}, got {value:g}")
            return None
        return value

    def int_list(self, key: str) -> Any:
        key, value = self._present(key, False)
        if value is MISSING:
            return None
        if not isinstance(value, list) or any(isinstance(x, bool) or not isinstance(x, int) for x in value):
            self.fail(f"{key} must be a list of integers (epochs), got {value!r}")
            return None
        return list(value)

    def known_kwargs(self, group: str, name: str, kwargs: dict[str, Any], options: Any) -> None:
        try:
            allowed = options(name)
        except ValueError as e:
            self.fail(f"{group}.name: {e}")
            return
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            self.fail(
                f"{group} {name!r} does not take {', '.join(unknown)}; its options are "
                f"{', '.join(allowed) or 'none'}"
            )
