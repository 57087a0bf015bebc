"""Classification runs of Tables 4 and 5: ``python -m pws.classify`` (``configs/classify.yaml``), an app of
:mod:`pws.engine`.

=============  ========================================================================================
``app``        the app: data, the mmengine config (model, loaders, metric, optimizer, schedule, EMA)
``config``     config validation into a ``ClassifyPlan`` (one clear error listing every bad value)
``model``      the paper's nets as an mmengine model (loss, error; logits for evaluation)
``metric``     top-1 / top-5 error and the test loss (an mmengine metric)
``datasets``   the data sets as the Runner's datasets
=============  ========================================================================================

``run(cfg, run_dir)`` is the programmatic entry (a config composed with Hydra's compose API).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from pws.classify.app import CLASSIFY
from pws.classify.config import ClassifyPlan, make_plan
from pws.engine.errors import ConfigError, RunFailed
from pws.engine.lifecycle import execute


def run(cfg: DictConfig, run_dir: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Run (or resume, or skip) the classification run ``cfg`` in ``run_dir``; return its record."""
    return execute(CLASSIFY, cfg, run_dir, overrides)


__all__ = ["ClassifyPlan", "ConfigError", "RunFailed", "make_plan", "run"]
