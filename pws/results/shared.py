"""One run, two tables: a cell whose config is that of a run another table (a sweep, a run by hand) already
made uses that run instead of training it again.

A cell's seed is identified by the fingerprint of the config its app resolves (:mod:`pws.records.fingerprint`:
the values the run uses, without the keys that only say where or how it runs), composed here as the app
will compose it (:func:`pws.engine.compose.compose_config`); a run's by the config its record holds. Below
the runs root every run with a record is indexed by its fingerprint, except the runs of the table being
reproduced (a table's cells are distinct experiments; a cell's own runs are its own seed directories).

A seed whose own directory holds no run and whose fingerprint is that of a finished (or diverged) run
elsewhere is not launched: the driver writes a reference, ``<cell>/seed<k>/shared_run.json`` (the run's
path relative to it, the run's table and cell, the fingerprint), and the table's collector counts the run
named there for the cell (:func:`shared_runs`), saying so in the cell's note and naming the run in its
provenance. A run with that fingerprint that is still running (its lock held) is referenced the same way:
the seed is not launched, the table says running until it ends, and the next reproduce uses it. A
reference whose run no longer has the cell's fingerprint (the table's definition changed), or whose run
failed or stopped, is dropped and the seed is launched; a seed directory with a run of its own
(``metrics.json``) always wins over its reference. Only the project's apps (``pws.classify``,
``pws.detect``) are composed; a cell of another app is never shared.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pws.engine.compose import compose_config
from pws.engine.schema import CONFIG_DIR
from pws.records.fingerprint import fingerprint, record_fingerprint
from pws.records.metrics_file import DONE_STATUSES, METRICS_FILE, atomic_write_bytes, read_metrics
from pws.results.collect import Run, iter_run_dirs, load_run

REFERENCE_FILE = "shared_run.json"


def cell_fingerprint(app: str, overrides: Sequence[str], seed: int) -> str | None:
    """The fingerprint of seed ``seed`` of a cell of ``app`` (``pws.classify``, ``pws.detect``) made with
    ``overrides``; None for another app or a config that does not compose (its launch says why)."""
    name = app.removeprefix("pws.")
    if name == app or not (CONFIG_DIR / f"{name}.yaml").is_file():
        return None
    try:
        cfg = _composed(name, tuple(overrides)).copy()
        cfg.seed = seed  # what the seed=<k> of the cell's multirun sets
        return fingerprint(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    except (HydraException, OmegaConfBaseException, ValueError):
        return None


@cache
def _composed(name: str, overrides: tuple[str, ...]) -> DictConfig:
    """The cell's config, composed once per process for all its seeds (copied before use)."""
    return compose_config(name, overrides)


def describe(run: Run) -> str:
    """``table2 lr1e-2/vgg16/bn seed 0 (finished): <path>``: the run a shared seed uses."""
    where = f"{run.table} {run.cell}" if run.table and run.cell else "a run"
    return f"{where} seed {run.seed} ({run.status}): {run.path}"


@dataclass
class RunIndex:
    """The runs below ``root`` by fingerprint, ``exclude`` (the table's own runs) left out; read once."""

    root: Path
    exclude: Path
    _paths: dict[str, list[Path]] | None = field(default=None, repr=False)

    @property
    def paths(self) -> dict[str, list[Path]]:
        if self._paths is None:
            self._paths = {}
            for path in iter_run_dirs(self.root):
                if path.resolve().is_relative_to(self.exclude.resolve()):
                    continue
                fp = record_fingerprint(read_metrics(path))
                if fp is not None:
                    self._paths.setdefault(fp, []).append(path)
        return self._paths

    def find(self, fp: str) -> Run | None:
        """The run of fingerprint ``fp`` to use: a finished or diverged one first, else one that is running
        (its lock held); None if there is neither."""
        runs = [load_run(p) for p in self.paths.get(fp, [])]
        done = [r for r in runs if r.status in DONE_STATUSES]
        live = [r for r in runs if r.status == "running"]
        return (done or live or [None])[0]


def read_reference(seed_dir: Path) -> Run | None:
    """The run that ``seed_dir``'s reference names (None without one, or when it cannot be read)."""
    try:
        ref = json.loads((seed_dir / REFERENCE_FILE).read_text())
        return load_run((seed_dir / ref["run_dir"]).resolve())
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_reference(seed_dir: Path, run: Run, *, table: str, grid: str | None, cell: str, fp: str) -> Path:
    """Write ``seed_dir``'s reference to ``run`` (its path relative to ``seed_dir``) for ``cell`` of
    ``table`` (its reduced ``grid``, if one)."""
    seed_dir.mkdir(parents=True, exist_ok=True)
    record = {"run_dir": os.path.relpath(run.path.resolve(), seed_dir.resolve()), "run_table": run.table,
              "run_cell": run.cell, "seed": run.seed, "fingerprint": fp, "table": table, "grid": grid,
              "cell": cell}
    path = seed_dir / REFERENCE_FILE
    atomic_write_bytes(path, (json.dumps(record, indent=1) + "\n").encode())
    return path


def find_shared(index: RunIndex, app: str, overrides: Sequence[str], seed: int, seed_dir: Path
                ) -> tuple[Run | None, str | None]:  # fmt: skip
    """The run that seed ``seed`` of a cell can use instead of training (finished, diverged or running)
    and the cell's fingerprint: ``seed_dir``'s reference when its run still has the cell's fingerprint,
    else one from ``index``; (None, fingerprint) when there is none."""
    referenced = read_reference(seed_dir)
    if referenced is None and not index.paths:
        return None, None
    fp = cell_fingerprint(app, overrides, seed)
    if fp is None:
        return None, None
    if referenced is not None and record_fingerprint(referenced.record) == fp and (
            referenced.status in (*DONE_STATUSES, "running")):
        return referenced, fp
    return index.find(fp), fp


def shared_runs(roots: Iterable[str | os.PathLike[str]], table: str, grid: str | None
                ) -> dict[str, list[Run]]:  # fmt: skip
    """The runs that cells of ``table`` (its reduced ``grid``, if one) use through references below
    ``roots``, by cell id (a seed directory with a run of its own is left out: its run wins)."""
    out: dict[str, list[Run]] = {}
    for root in roots:
        if not Path(root).exists():
            continue
        for ref_path in sorted(Path(root).rglob(REFERENCE_FILE)):
            seed_dir = ref_path.parent
            if (seed_dir / METRICS_FILE).exists():
                continue
            try:
                ref = json.loads(ref_path.read_text())
            except (OSError, ValueError):
                continue
            run = read_reference(seed_dir)
            if (run is None or run.record is None or (ref.get("table"), ref.get("grid")) != (table, grid)
                    or not ref.get("cell")):
                continue
            out.setdefault(str(ref["cell"]), []).append(run)
    return out
