"""From runs to the numbers of a reproduced table: per cell and metric, ours (mean ± std over seeds),
the paper's, the difference, and a status with its reason.

The rules, in the paper's terms:

* a seed that **finished** contributes its value; with several, the cell is ``mean ± std`` (sample
  standard deviation, n - 1) over the finished seeds;
* a seed that **diverged** is NaN, as the paper prints; a cell whose every completed seed diverged prints
  ``NaN``; seeds that diverged beside finished ones are counted in the cell's note (``1/3 diverged``);
* a cell with no completed seed prints a dash and the reason: ``- (not run)``, ``- (failed: <error>)``,
  ``- (unreadable metrics.json: <path>)``, ``- (running)`` (its process is alive), ``- (stopped: killed?,
  rerun resumes it)`` (its record says running but no live process holds it), ``- (incomplete: no
  metrics.json)``, or ``- (launch failed: <error>)`` from the driver's launch record. A running, stopped or
  failed run never gives its last evaluation as the cell's number.

With two or more finished seeds a cell also has a 95% interval of its mean (Student's t over the seeds,
:mod:`pws.results.intervals`), and Δ says whether the reference number (the paper's, or the authors' later
one: ``reference``) lies inside it; with one seed the interval is unknown. Each cell keeps where its
number comes from: its run directories, their commits, their wandb run ids and the command that reproduces
it (:attr:`CellMetric.command`).
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pws.paper.experiments import Display, Table
from pws.paper.published import reference_value
from pws.results.collect import IGNORED_KEYS, Run, parse_override
from pws.results.intervals import Interval, mean_interval
from pws.results.tally import RunTally

DASH = "-"


@dataclass(kw_only=True)
class CellMetric(RunTally):
    """One printed cell: ``metric`` of table cell ``cell``."""

    table: str
    cell: str
    row: str
    column: str
    display: Display
    paper: float | None              # the reference number: the paper's, or the authors' (``reference``)
    reference: str = "paper"         # whose number ``paper`` is
    reference_source: str = ""       # where it was produced
    launch_error: str | None = None
    commits: list[str] = field(default_factory=list)    # of its runs, ``-dirty`` where they were
    wandb_ids: list[str] = field(default_factory=list)
    command: str = ""                # the command line that reproduces the cell (all its seeds)
    shared: list[str] = field(default_factory=list)  # runs of another table (or by hand) it uses, described

    @property
    def interval(self) -> Interval | None:
        """The 95% interval of the mean over the finished seeds; None (unknown) with fewer than two."""
        return mean_interval(self.values)

    @property
    def reference_inside(self) -> bool | None:
        """Whether the reference number lies inside :attr:`interval`; None when either is unknown."""
        ci, p = self.interval, self.paper
        if ci is None or p is None or math.isnan(p):
            return None
        return ci.contains(p)

    @property
    def delta(self) -> float | None:
        m, p = self.mean, self.paper
        if m is None or p is None or math.isnan(m) or math.isnan(p):
            return None
        return m - p

    @property
    def status(self) -> str:
        """ok / partial (finished and diverged seeds) / diverged / unreadable / failed / running / stopped /
        incomplete / not run (see :attr:`RunTally.state`); a cell whose launch failed before any run
        started is failed."""
        state = self.state
        if state == "not run" and self.launch_error:
            return "failed"
        return state

    @property
    def reason(self) -> str:
        """Why the cell has no number, or what its note says (empty for a plain finished cell)."""
        if self.values or self.diverged_seeds:
            return "; ".join([*self.notes(), *self.shared])
        why = self.why()
        if why is not None:
            return "; ".join([why, *self.shared])
        if self.launch_error:
            return "launch failed: " + self.launch_error
        return "not run"

    # -- text ------------------------------------------------------------------------------------
    def fmt(self, x: float | None, signed: bool = False) -> str:
        if x is None:
            return DASH
        if math.isnan(x):
            return "NaN"
        d = self.display.decimals
        return f"{x:+.{d}f}" if signed else f"{x:.{d}f}"

    @property
    def ours_text(self) -> str:
        if self.values:
            text = self.fmt(self.mean)
            if self.std is not None:
                text += f" ± {self.fmt(self.std)}"
            if self.reason:
                text += f" ({self.reason})"
            return text
        if self.diverged_seeds:
            return "NaN" + (f" ({self.reason})" if self.reason else "")
        return f"{DASH} ({self.reason})"

    @property
    def interval_text(self) -> str:
        """``[low, high] (n = 3)``; ``unknown (1 seed)``; a dash without a number."""
        if not self.values:
            return DASH
        ci = self.interval
        if ci is None:
            return "unknown (1 seed)"
        return f"[{self.fmt(ci.low)}, {self.fmt(ci.high)}] (n = {ci.n})"

    @property
    def paper_text(self) -> str:
        return self.fmt(self.paper) if self.paper is not None else DASH

    @property
    def delta_text(self) -> str:
        d = self.delta
        if d is not None:
            inside = self.reference_inside
            where = "" if inside is None else (" (inside CI)" if inside else " (outside CI)")
            return self.fmt(d, signed=True) + where
        m, p = self.mean, self.paper
        if m is not None and p is not None and math.isnan(m) and math.isnan(p):
            return "both NaN"
        return DASH


@dataclass
class TableResult:
    """A reproduced table: its definition, the scale and grid it ran at, and every printed cell."""

    table: Table
    scale: str
    grid: str | None
    rows: list[str]
    columns: list[str]
    cells: dict[tuple[str, int], CellMetric]   # (row id, display index) -> cell
    runs_root: list[str]
    n_runs: int
    commits: list[str]
    seeds: list[int]
    reference: str = "paper"

    def cell(self, row: str, display_index: int) -> CellMetric:
        return self.cells[(row, display_index)]

    @property
    def displays(self) -> list[tuple[int, Display]]:
        """The printed columns whose run column is in the grid."""
        return [(i, d) for i, d in enumerate(self.table.display) if d.column in self.columns]


def aggregate(
    table: Table,
    runs_by_cell: dict[str, list[Run]],
    scale: str,
    *,
    grid: str | None = None,
    launches: list[dict[str, Any]] | None = None,
    runs_root: list[str] | None = None,
    seeds: list[int] | None = None,
    reference: str = "paper",
    shared: Collection[Path] = (),
) -> TableResult:
    """Build the reproduced table from runs grouped by cell (see ``collect.runs_for_table``).

    ``seeds``: when given, only those seeds count (the driver passes the seeds it ran). ``reference``:
    ``paper`` or ``authors``, the numbers Δ is taken against (:func:`pws.paper.published.reference_value`).
    ``shared``: the run directories of runs made for another table (or by hand) with a cell's config,
    each named in its cell's note.
    """
    rows, columns, extra, _ = table.grid(grid)
    launch_errors = {}
    for rec in launches or []:
        if rec.get("table") == table.name and rec.get("returncode") not in (0, None):
            launch_errors[rec.get("cell")] = str(rec.get("error") or f"exit status {rec.get('returncode')}")
    cells: dict[tuple[str, int], CellMetric] = {}
    commits: set[str] = set()
    n_runs = 0
    seen_seeds: set[int] = set()
    for row in rows:
        for i, disp in enumerate(table.display):
            if disp.column not in columns:
                continue
            cell_id = table.cell_id(disp.column, row)
            ref = reference_value(table.name, cell_id, disp.metric, reference)
            cm = CellMetric(
                table=table.name, cell=cell_id, row=row, column=disp.column, display=disp,
                paper=ref.value, reference=ref.whose, reference_source=ref.source, metric=disp.metric,
            )
            counted = [run for run in runs_by_cell.get(cell_id, [])
                       if seeds is None or run.seed is None or run.seed in seeds]
            for run in counted:
                cm.add(run)
            cm.commits = sorted({run.commit for run in counted if run.commit})
            cm.wandb_ids = [run.wandb_id for run in counted if run.wandb_id]
            cm.shared = [shared_note(run) for run in counted if run.path in shared]
            wanted = [*table.overrides(disp.column, row, scale), *extra] if scale in table.scales else []
            cm.command = command_line(table, cell_id, counted, wanted)
            if not cm.run_dirs and cell_id in launch_errors:
                cm.launch_error = launch_errors[cell_id]
            cells[(row, i)] = cm
    for runs in runs_by_cell.values():
        for run in runs:
            if seeds is not None and run.seed is not None and run.seed not in seeds:
                continue
            n_runs += 1
            if run.seed is not None:
                seen_seeds.add(run.seed)
            if run.commit:
                commits.add(run.commit)
    return TableResult(
        table=table, scale=scale, grid=grid, rows=rows, columns=columns, cells=cells,
        runs_root=[str(Path(r)) for r in (runs_root or [])], n_runs=n_runs, commits=sorted(commits),
        seeds=sorted(seeds if seeds is not None else seen_seeds), reference=reference,
    )


def shared_note(run: Run) -> str:
    """How a cell's note names a run it uses that was made for another table (or by hand)."""
    made_for = f"{run.table} {run.cell}" if run.table and run.cell else "another run"
    return f"seed {run.seed}: the run of {made_for} (same config, not trained again)"


def command_line(table: Table, cell: str, runs: list[Run], overrides: list[str]) -> str:
    """The command that reproduces ``cell`` with the seeds of ``runs``: the Hydra overrides its runs were
    made with (saved in each run; the table's ``overrides`` for the cell when no run saved them)."""

    def defining(words: list[str]) -> list[str]:
        return [o for o in words if parse_override(o)[0] not in IGNORED_KEYS
                and not parse_override(o)[0].startswith("hydra")]

    keep = next((defining(r.overrides) for r in runs if defining(r.overrides)), defining(overrides))
    seeds = sorted({r.seed for r in runs if r.seed is not None}) or [0]
    words = ["python", "-m", table.app, "-m", *keep, f"table={table.name}", f"cell={cell}",
             "seed=" + ",".join(str(s) for s in seeds)]
    return " ".join(shlex.quote(w) for w in words)
