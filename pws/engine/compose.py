"""The one way to compose an app's config outside ``python -m pws.<app>``: :func:`compose_config`.

The command line (:mod:`pws.engine.cli`, before Hydra starts), the table tools' plan, the diagnostics, the
benchmarks and the tests all compose ``configs/<app>.yaml`` with overrides through Hydra's compose API, as
the app's own ``@hydra.main`` does, so a cell's config is the config its run will have.
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from pws.engine.schema import CONFIG_DIR


def compose_config(app: str, overrides: Sequence[str] = (), *, with_hydra: bool = False) -> DictConfig:
    """``configs/<app>.yaml`` (``classify``, ``detect``, ``diagnostics``) composed with ``overrides`` (Hydra's
    syntax); ``with_hydra``: keep the ``hydra`` node (the run directory, the launcher)."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3", job_name=app):
        return compose(app, overrides=list(overrides), return_hydra_config=with_hydra)
