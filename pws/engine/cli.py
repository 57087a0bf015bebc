"""The command line of every app: Hydra composes the config, :func:`~pws.engine.lifecycle.execute` runs it.

Errors end in one line on stderr, ``pws.<app>: error: <message>``, and the exit code of their kind
(:mod:`pws.engine.errors`: 2 for an invalid value, 1 for a run that cannot go on, 0 after a preemption
checkpoint). Several processes (torchrun; the tasks of a SLURM job): those of rank > 0 leave Hydra's files
(``.hydra/``, the log file) to rank 0 (:mod:`pws.engine.process`).
"""

from __future__ import annotations

import itertools
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import get_original_cwd
from omegaconf import DictConfig, OmegaConf

from pws.engine.app import App
from pws.engine.compose import compose_config
from pws.engine.errors import ConfigError, Preempted, RunFailed
from pws.engine.lifecycle import execute
from pws.engine.process import batch_problem, current, job_processes, leave, unwritable
from pws.engine.resolvers import register_resolvers
from pws.engine.schema import CONFIG_DIR, check_known_keys
from pws.engine.shield import ignore_notices_after_the_run

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


def unsplit_batch(app_name: str, argv: list[str]) -> str | None:
    """Why a job of the multirun ``argv`` cannot split its total batch over the processes its launcher
    starts (``hydra.launcher.tasks_per_node`` x ``nodes``; :func:`pws.engine.process.batch_problem`);
    None when every job can, or when ``argv`` is not a multirun. Checked before Hydra submits any job."""
    if not {"-m", "--multirun"} & set(argv):
        return None
    try:
        overrides = OverridesParser.create().parse_overrides([a for a in argv if not a.startswith("-")])
        choices = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()]
                   if o.is_sweep_override() else [f"{o.get_key_element()}={o.get_value_element_as_str()}"]
                   for o in overrides]  # fmt: skip
    except Exception:  # noqa: BLE001 - a bad override: Hydra reports it in its own words
        return None
    for job in itertools.product(*choices):
        try:
            cfg = compose_config(app_name, list(job), with_hydra=True)
            total, processes = OmegaConf.select(cfg, "data.batch_size"), job_processes(cfg.hydra.launcher)
        except Exception:  # noqa: BLE001 - as above
            continue
        if isinstance(total, int) and (problem := batch_problem(total, processes)) is not None:
            return f"{' '.join(job)}: {problem}"
    return None


def hydra_app(app: App, shown: tuple[str, ...]) -> Callable[[], None]:
    """The ``main()`` of ``python -m pws.<app.name>``; ``shown``: the metrics its last line prints."""

    @hydra.main(config_path=str(CONFIG_DIR), config_name=app.name, version_base="1.3")
    def _main(cfg: DictConfig) -> None:
        hc = HydraConfig.get()
        if not current().is_main:
            logging.getLogger().setLevel(logging.WARNING)
        finished = False
        try:
            record = execute(
                app, cfg, Path(hc.runtime.output_dir), list(hc.overrides.task), base_dir=get_original_cwd()
            )
            finished = True
        except (ConfigError, RunFailed) as e:
            print(f"pws.{app.name}: error: {e}", file=sys.stderr)
            sys.exit(e.exit_code)
        except Preempted as e:
            print(f"pws.{app.name}: {e}", file=sys.stderr)
            sys.exit(e.exit_code)
        finally:  # each run of a multirun: in a SLURM task or a sweep, the process goes on after it
            leave(finished)
            ignore_notices_after_the_run()
        values = ", ".join(f"{k}={record[k]:.2f}" for k in shown if isinstance(record.get(k), (int, float)))
        print(f"pws.{app.name}: {record.get('status')}: {values}")

    def main() -> None:
        try:  # before Hydra, which refuses an unknown key without ``+`` in its own words
            check_known_keys(app.name, sys.argv[1:])
        except ConfigError as e:
            print(f"pws.{app.name}: error: {e}", file=sys.stderr)
            sys.exit(e.exit_code)
        if not current().is_main:
            sys.argv += ["hydra.output_subdir=null", "hydra/job_logging=stdout"]
        elif (problem := unwritable_run_dir(app.name, sys.argv[1:])) is not None:
            print(f"pws.{app.name}: error: {problem}", file=sys.stderr)
            sys.exit(RunFailed.exit_code)
        elif (problem := unsplit_batch(app.name, sys.argv[1:])) is not None:
            print(f"pws.{app.name}: error: {problem}", file=sys.stderr)
            sys.exit(ConfigError.exit_code)
        _main()

    return main
