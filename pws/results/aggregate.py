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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pws.paper.experiments import Display, Table
from pws.paper.published import paper_value
from pws.results.collect import Run
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
    paper: float | None
    launch_error: str | None = None

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
            return "; ".join(self.notes())
        why = self.why()
        if why is not None:
            return why
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
    def paper_text(self) -> str:
        return self.fmt(self.paper) if self.paper is not None else DASH

    @property
    def delta_text(self) -> str:
        d = self.delta
        if d is not None:
            return self.fmt(d, signed=True)
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
) -> TableResult:
    """Build the reproduced table from runs grouped by cell (see ``collect.runs_for_table``).

    ``seeds``: when given, only those seeds count (the driver passes the seeds it ran).
    """
    rows, columns, _, _ = table.grid(grid)
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
            cm = CellMetric(
                table=table.name, cell=cell_id, row=row, column=disp.column, display=disp,
                paper=paper_value(table.name, cell_id, disp.metric), metric=disp.metric,
            )
            for run in runs_by_cell.get(cell_id, []):
                if seeds is None or run.seed is None or run.seed in seeds:
                    cm.add(run)
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
            record = run.record or {}
            if record.get("git_commit"):  # "-dirty": tracked files had uncommitted changes at the run
                commits.add(str(record["git_commit"])[:10] + ("-dirty" if record.get("git_dirty") else ""))
    return TableResult(
        table=table, scale=scale, grid=grid, rows=rows, columns=columns, cells=cells,
        runs_root=[str(Path(r)) for r in (runs_root or [])], n_runs=n_runs, commits=sorted(commits),
        seeds=sorted(seeds if seeds is not None else seen_seeds),
    )
