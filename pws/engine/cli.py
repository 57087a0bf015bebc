"""The command line of every app: Hydra composes the config, :func:`~pws.engine.lifecycle.execute` runs it.

Errors end in one line on stderr, ``pws.<app>: error: <message>``, and the exit code of their kind
(:mod:`pws.engine.errors`: 2 for an invalid value, 1 for a run that cannot go on, 0 after a preemption
checkpoint). Under torchrun the processes of rank > 0 leave Hydra's files (``.hydra/``, the log file) to
rank 0.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_original_cwd
from omegaconf import DictConfig, OmegaConf

from pws.engine.app import App
from pws.engine.compose import compose_config
from pws.engine.errors import ConfigError, Preempted, RunFailed
from pws.engine.lifecycle import execute, leave_process_group, unwritable, world
from pws.engine.schema import CONFIG_DIR, check_known_keys
from pws.records.run_dir import register_resolvers

log = logging.getLogger("pws.engine")

register_resolvers()  # ${pws.nonempty:...} in the run directory's name


def unwritable_run_dir(app_name: str, argv: list[str]) -> str | None:
    """Why the run directory of the command line ``argv`` cannot be written (None: it can, or it is not a
    single run). Checked before Hydra starts, since Hydra writes its own files there first and would fail
    with a traceback instead of one line."""
    if any(a.startswith("-") for a in argv):  # --multirun, --cfg, --help, ...: Hydra's business
        return None
    try:
        cfg = compose_config(app_name, argv, with_hydra=True)
        HydraConfig.instance().set_config(cfg)
        run_dir = Path(str(OmegaConf.select(cfg, "hydra.run.dir")))
    except Exception:  # noqa: BLE001 - a bad override: Hydra reports it in its own words
        return None
    return unwritable(run_dir)


def hydra_app(app: App, shown: tuple[str, ...]) -> Callable[[], None]:
    """The ``main()`` of ``python -m pws.<app.name>``; ``shown``: the metrics its last line prints."""

    @hydra.main(config_path=str(CONFIG_DIR), config_name=app.name, version_base="1.3")
    def _main(cfg: DictConfig) -> None:
        hc = HydraConfig.get()
        if world()[0] > 0:
            logging.getLogger().setLevel(logging.WARNING)
        try:
            record = execute(
                app, cfg, Path(hc.runtime.output_dir), list(hc.overrides.task), base_dir=get_original_cwd()
            )
        except (ConfigError, RunFailed) as e:
            print(f"pws.{app.name}: error: {e}", file=sys.stderr)
            sys.exit(e.exit_code)
        except Preempted as e:
            print(f"pws.{app.name}: {e}", file=sys.stderr)
            sys.exit(e.exit_code)
        values = ", ".join(f"{k}={record[k]:.2f}" for k in shown if isinstance(record.get(k), (int, float)))
        print(f"pws.{app.name}: {record.get('status')}: {values}")

    def main() -> None:
        try:  # before Hydra, which refuses an unknown key without ``+`` in its own words
            check_known_keys(app.name, sys.argv[1:])
        except ConfigError as e:
            print(f"pws.{app.name}: error: {e}", file=sys.stderr)
            sys.exit(e.exit_code)
        if world()[0] > 0:
            sys.argv += ["hydra.output_subdir=null", "hydra/job_logging=stdout"]
        elif (problem := unwritable_run_dir(app.name, sys.argv[1:])) is not None:
            print(f"pws.{app.name}: error: {problem}", file=sys.stderr)
            sys.exit(RunFailed.exit_code)
        try:
            _main()
        finally:
            leave_process_group()

    return main
