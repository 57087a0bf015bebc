"""The project's Hydra resolvers: ``${pws.nonempty:x,default}``, which names run directories, and
``${pws.tasks_per_node:tasks,gpus}``, the SLURM launcher's processes per node.

Both apps name a run directory after its overrides (``hydra:job.override_dirname``); a run without any
overrides gets ``default`` instead of an empty path component.
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from pws.engine.process import tasks_per_node


def _nonempty(value: Any, default: Any) -> Any:
    return value if value not in (None, "") else default


def register_resolvers() -> None:
    """Register ``pws.nonempty`` and ``pws.tasks_per_node`` (the SLURM launcher's processes per node,
    :func:`pws.engine.process.tasks_per_node`) with OmegaConf; idempotent."""
    if not OmegaConf.has_resolver("pws.nonempty"):
        OmegaConf.register_new_resolver("pws.nonempty", _nonempty)
    if not OmegaConf.has_resolver("pws.tasks_per_node"):
        OmegaConf.register_new_resolver("pws.tasks_per_node", tasks_per_node)
