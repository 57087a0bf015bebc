"""The Hydra resolver that names run directories: ``${pws.nonempty:x,default}``.

Both apps name a run directory after its overrides (``hydra:job.override_dirname``); a run without any
overrides gets ``default`` instead of an empty path component.
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf


def _nonempty(value: Any, default: Any) -> Any:
    return value if value not in (None, "") else default


def register_resolvers() -> None:
    """Register ``pws.nonempty`` with OmegaConf; idempotent."""
    if not OmegaConf.has_resolver("pws.nonempty"):
        OmegaConf.register_new_resolver("pws.nonempty", _nonempty)
