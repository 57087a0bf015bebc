"""The full scale's refusals before any work, for every app: :func:`preflight` (a ConfigError, exit 2).

A full-scale run does not start

* on a CPU nobody asked for (``train.device=auto`` where torch sees no GPU; :func:`pws.engine.device.
  cpu_fallback`): ``train.device=cpu`` says the CPU is meant;
* on data that are not the paper's (:func:`pws.data.census.full_scale_problem`): a set whose image counts
  differ from the official ones, or one the project generated (its generator's marker), at the data root of
  one of the paper's data sets; ``data.allow_partial=true`` runs on it anyway.

The device is checked first, so a refused device never touches the data. Missing data is left to the app's
``prepare`` (its error names the path and how to get the data; exit 1).
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from pws.data.census import full_scale_problem
from pws.engine.device import FULL_SCALE, cpu_fallback
from pws.engine.errors import ConfigError


def data_problem(cfg: DictConfig, base_dir: str | os.PathLike[str]) -> str | None:
    """Why a full-scale run of ``cfg`` must not take its data set for the paper's (None: it may)."""
    if OmegaConf.select(cfg, "scale.name") != FULL_SCALE or OmegaConf.select(cfg, "data.allow_partial"):
        return None
    name, root = OmegaConf.select(cfg, "data.name"), OmegaConf.select(cfg, "data.root")
    if name is None or root is None:
        return None
    root = Path(os.path.expanduser(str(root)))
    problem = full_scale_problem(str(name), root if root.is_absolute() else Path(base_dir) / root)
    if problem is None:
        return None
    return (f"{problem}. A full-scale run trains on the complete real data set: give its root (data.root; "
            "`python scripts/prepare_data.py <set> --root <dir> --check` counts it), or "
            "data.allow_partial=true to run on this one anyway")  # fmt: skip


def preflight(cfg: DictConfig, base_dir: str | os.PathLike[str]) -> None:
    """Raise :class:`ConfigError` when a full-scale run of ``cfg`` would train on a CPU it was not given,
    or on partial or generated data (see the module); nothing at the smoke scale."""
    scale = OmegaConf.select(cfg, "scale.name")
    problem = cpu_fallback(scale, OmegaConf.select(cfg, "train.device")) or data_problem(cfg, base_dir)
    if problem is not None:
        raise ConfigError(f"refused before any work: {problem}")
