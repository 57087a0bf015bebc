"""The Hydra entry point of ``python -m pws.classify`` (config root ``configs/``, primary ``classify.yaml``).

Under torchrun the processes of rank > 0 leave Hydra's files (``.hydra/``, the log file) to rank 0:
``hydra.output_subdir=null`` and console-only logging are added to their command line.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from pws.classify.config import CONFIG_DIR, CONFIG_NAME
from pws.classify.distributed import rank_from_env
from pws.classify.preemption import Preempted
from pws.classify.run import run

log = logging.getLogger("pws.classify")


@hydra.main(config_path=str(CONFIG_DIR), config_name=CONFIG_NAME, version_base="1.3")
def _app(cfg: DictConfig) -> None:
    hc = HydraConfig.get()
    if rank_from_env() > 0:
        logging.getLogger().setLevel(logging.WARNING)
    try:
        run(cfg, Path(hc.runtime.output_dir), list(hc.overrides.task))
    except Preempted:
        sys.exit(0)  # checkpoint saved: the scheduler (or the user) runs the same command again


def main() -> None:
    if rank_from_env() > 0:
        sys.argv += ["hydra.output_subdir=null", "hydra/job_logging=stdout"]
    _app()
