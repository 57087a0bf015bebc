"""One config schema for what every app shares, checked the same way in every app.

* :class:`Validator` reads dotted keys of the composed config and collects *every* problem into one
  :class:`~pws.engine.errors.ConfigError` (one line per problem, naming the key and what is allowed);
* :func:`common_values` checks the keys both apps have (seed, force, the EMA option, wandb, the table
  cell);
* :func:`check_known_keys` refuses a key the configs do not know (``+optim.lrr=0.1``), as a misspelt one,
  naming the closest known key.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pws.engine.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
SEED_MAX = 2**32 - 1
WANDB_MODES = ("online", "offline", "disabled")


def common_values(v: Validator) -> dict[str, Any]:
    """The values every app takes: ``seed`` (0 .. 2**32 - 1), ``force``, ``ema.*`` (the authors' weight
    average, :mod:`pws.engine.ema`), ``wandb.mode``, table/row/cell."""
    seed = v.integer("seed", minimum=0)
    if seed is not None and seed > SEED_MAX:
        v.fail(f"seed must be <= {SEED_MAX}, got {seed}")
    mode = v.string("wandb.mode")
    if mode is not None and mode not in WANDB_MODES:
        v.fail(f"wandb.mode must be one of {', '.join(WANDB_MODES)}, got {mode!r}")
    ema_enabled = v.boolean("ema.enabled")
    ema_decay = v.number("ema.decay", minimum=0.0, below=1.0)
    return {
        "seed": seed,
        "ema_decay": ema_decay if ema_enabled else None,
        "ema_warmup": v.boolean("ema.warmup"),
        "force": v.boolean("force"),
        "wandb_mode": mode,
        "table": v.string("table", optional=True),
        "row": v.string("row", optional=True),
        "cell": v.string("cell", optional=True),
    }


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


def check_known_keys(cfg: DictConfig, app: str, overrides: list[str]) -> None:
    """Refuse a ``+key=value`` override whose key no config defines (the typo that would be ignored)."""
    known = known_keys(app)
    unknown = []
    for override in overrides:
        if not override.startswith("+") or "=" not in override:
            continue
        key = override.lstrip("+").split("=", 1)[0]
        if key not in known:
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

    def _present(self, key: str, optional: bool) -> Any:
        value = self.get(key)
        if value is MISSING:
            self.fail(f"{key} is missing from the config")
            return MISSING
        if value is None and not optional:
            self.fail(f"{key} must be set (got null)")
            return MISSING
        return value

    def string(self, key: str, optional: bool = False) -> Any:
        value = self._present(key, optional)
        if value is MISSING or value is None:
            return None
        if not isinstance(value, str) or not value:
            self.fail(f"{key} must be a non-empty string, got {value!r}")
            return None
        return value

    def boolean(self, key: str) -> Any:
        value = self._present(key, False)
        if value is MISSING:
            return None
        if not isinstance(value, bool):
            self.fail(f"{key} must be true or false, got {value!r}")
            return None
        return value

    def integer(self, key: str, minimum: int | None = None, optional: bool = False) -> Any:
        value = self._present(key, optional)
        if value is MISSING or value is None:
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
    ) -> Any:
        value = self._present(key, False)
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
        value = self._present(key, False)
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
