"""Collect a table's runs and write everything a reader looks at: ``<out>/<stem>.md``, ``.csv``, ``.tex``,
``<stem>_vs_paper.png``, ``<stem>_curves.png``, ``<out>/claims.md`` (the paper's claims checked on every
table rendered in ``<out>``), and the reproduced table as a wandb Table (offline unless ``WANDB_MODE`` says
otherwise; ``disabled`` skips it)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pws.paper.experiments import Table, load_table
from pws.results.aggregate import TableResult, aggregate
from pws.results.claims import write_claims
from pws.results.collect import Run, collect_launches, collect_runs, override_dict, runs_for_table
from pws.results.render import CSV_FIELDS, csv_rows, output_stem, write_all
from pws.results.shared import shared_runs


@dataclass
class Report:
    result: TableResult
    runs_by_cell: dict[str, list[Run]]
    paths: dict[str, Path] = field(default_factory=dict)
    wandb_dir: Path | None = None
    unreadable: list[str] = field(default_factory=list)  # every unreadable metrics.json below the roots

    @property
    def problems(self) -> list[str]:
        """The files collection could not read, each named with what is wrong (the table is rendered
        without them: their cells say so)."""
        return list(self.unreadable)


def build(
    table: str | Table,
    runs_roots: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    scale: str,
    *,
    grid: str | None = None,
    seeds: list[int] | None = None,
    runs: list[Run] | None = None,
    reference: str = "paper",
) -> Report:
    """Collect and aggregate (no files written); Δ against the ``reference`` numbers (paper or authors). A
    cell also counts the runs its seeds' references name (runs of the same config made elsewhere,
    :mod:`pws.results.shared`)."""
    t = load_table(table) if isinstance(table, str) else table
    roots = [runs_roots] if isinstance(runs_roots, (str, os.PathLike)) else list(runs_roots)
    if runs is None:
        runs = collect_runs(roots)
    by_cell = runs_for_table(t, runs, scale)
    rows, cols, extra, _ = t.grid(grid)
    in_grid = {t.cell_id(c, r) for r in rows for c in cols}
    by_cell = {k: v for k, v in by_cell.items() if k in in_grid}
    for cell_id, cell_runs in by_cell.items():
        column, row = t.split_cell(cell_id)
        by_cell[cell_id] = _prefer_canonical(cell_runs, [*t.overrides(column, row, scale), *extra])
    shared = {k: [r for r in v if r.scale in (None, scale)]
              for k, v in shared_runs(roots, t.name, grid).items() if k in in_grid}
    for cell_id, cell_runs in shared.items():
        by_cell[cell_id] = [*by_cell.get(cell_id, []), *cell_runs]
    res = aggregate(t, by_cell, scale, grid=grid, launches=collect_launches(roots),
                    runs_root=[str(r) for r in roots], seeds=seeds, reference=reference,
                    shared={r.path for rs in shared.values() for r in rs})
    unreadable = [str(r.unreadable) for r in runs if r.unreadable is not None]
    return Report(result=res, runs_by_cell=by_cell, unreadable=unreadable)


def _prefer_canonical(runs: list[Run], wanted: list[str]) -> list[Run]:
    """Runs of one cell made with different overrides (say the demo's 2-epoch runs beside the smoke grid's
    12-epoch ones, both below the folder collected) are not seeds of one experiment: keep those made with
    the cell's own overrides when there are such runs; otherwise keep all."""
    made_with = {frozenset(override_dict(r.overrides).items()) for r in runs if r.overrides}
    if len(made_with) <= 1:
        return runs
    canonical = override_dict(wanted)
    keep = [r for r in runs if not r.overrides or override_dict(r.overrides) == canonical]
    return keep or runs


def write(report: Report, out_dir: str | os.PathLike[str], *, plots: bool = True,
          wandb_mode: str | None = None) -> Report:
    """Write the table files, the plots, claims.md and the wandb Table of ``report`` into ``out_dir``."""
    res = report.result
    out_dir = Path(out_dir)
    report.paths = write_all(res, out_dir)
    report.paths["claims"] = write_claims(out_dir, res.scale, res.reference)
    stem = output_stem(res.table.name, res.grid)
    if plots:
        from pws.results.plots import (  # imports matplotlib: only when plots are asked for
            plot_curves,
            plot_vs_paper,
        )

        report.paths["vs_paper_png"] = plot_vs_paper(res, out_dir / f"{stem}_vs_paper.png")
        curves = plot_curves(res, report.runs_by_cell, out_dir / f"{stem}_curves.png")
        if curves is not None:
            report.paths["curves_png"] = curves
    report.wandb_dir = log_wandb_table(report, out_dir, mode=wandb_mode)
    return report


def render_table(
    table: str | Table,
    runs_roots: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    scale: str,
    out_dir: str | os.PathLike[str],
    *,
    grid: str | None = None,
    seeds: list[int] | None = None,
    plots: bool = True,
    wandb_mode: str | None = None,
    reference: str = "paper",
) -> Report:
    """Collect the runs of ``table`` below ``runs_roots`` and write its files into ``out_dir``."""
    return write(build(table, runs_roots, scale, grid=grid, seeds=seeds, reference=reference), out_dir,
                 plots=plots, wandb_mode=wandb_mode)


def log_wandb_table(report: Report, out_dir: Path, *, mode: str | None = None) -> Path | None:
    """Log the reproduced table (and its plots) as one wandb run; return the run's folder.

    Project ``pws-<table>``, job type ``collect``. Offline by default: ``wandb sync <folder>`` uploads it.
    """
    mode = os.environ.get("WANDB_MODE") or mode or "offline"
    if mode == "disabled":
        return None
    import wandb

    res = report.result
    name = f"{output_stem(res.table.name, res.grid)}-{res.scale}"
    run = wandb.init(
        dir=str(out_dir), mode=mode, project=f"pws-{res.table.name}", job_type="collect", name=name,
        group="reproduced-table", tags=[res.scale, "collect"],
        config={"table": res.table.name, "scale": res.scale, "grid": res.grid, "seeds": res.seeds,
                "runs_root": res.runs_root, "n_runs": res.n_runs},
        reinit="finish_previous", settings=wandb.Settings(silent=True, console="off"),
    )
    rows = csv_rows(res)
    table = wandb.Table(columns=CSV_FIELDS, data=[[r[k] for k in CSV_FIELDS] for r in rows])
    payload = {"reproduced_table": table}
    for key in ("vs_paper_png", "curves_png"):
        if key in report.paths:
            payload[key.removesuffix("_png")] = wandb.Image(str(report.paths[key]))
    run.log(payload)
    folder = Path(run.dir).parent
    run.finish()
    return folder
