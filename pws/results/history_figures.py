"""The paper's figures that draw one metric against epochs for the runs of one grid, from their histories.

    python -m pws.results.history_figures figure3|figure5 --scale smoke|full [--runs runs] [--out results]

* Figure 3 ("The f-measure of different normalization methods during training"): ``f_measure`` of the
  SSD runs of ``experiments/figure3_grid.yaml`` (made by ``make reproduce-figure3``; the f-measure is
  :mod:`pws.detect.fmeasure`, evaluated after every epoch);
* Figure 5 ("Top-5 error for ImageNet val set"): ``top5_error`` of Table 5's ResNet-50 runs.

Each writes ``<out>/<scale>/<figure>.csv`` (one line per method and epoch: the mean over the seeds, and how
many seeds) and ``<figure>.png`` (one line per method). A method's curve is the one the tables' curves
draw: the mean over its finished runs (its diverged ones when none finished;
:func:`pws.results.plots.mean_curve`); runs not finished are left out, and named on stdout. Nothing is
trained here. (Figure 4, CIFAR-10's top-1 error at LR 5e-2, is Table 4's curves plot,
``results/<scale>/table4_curves.png``.)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.ticker import MaxNLocator

from pws.diagnostics.figures import read_csv
from pws.diagnostics.probe import write_rows
from pws.paper.experiments import load_table
from pws.results.collect import collect_runs, runs_for_table
from pws.results.plots import mean_curve, plt
from pws.results.render import runs_dir


@dataclass(frozen=True)
class HistoryFigure:
    """One figure: the history ``key`` of the runs of ``table`` (a table definition in experiments/)."""

    name: str
    table: str
    key: str
    ylabel: str
    title: str
    makes_runs: str  # the command that makes the runs

    @property
    def columns(self) -> tuple[str, ...]:
        return ("method", "label", "epoch", self.key, "seeds")


FIGURES = {
    "figure3": HistoryFigure("figure3", "figure3_grid", "f_measure", "f-measure (%)",
                             "Figure 3: f-measure of SSD during training", "make reproduce-figure3"),
    "figure5": HistoryFigure("figure5", "table5", "top5_error", "top-5 error (%)",
                             "Figure 5: top-5 error, Table 5's ResNet-50 runs", "make reproduce-table5"),
}  # fmt: skip


def figure_rows(figure: HistoryFigure, runs_root: str | Path, scale: str,
                printer: Any = print) -> list[dict[str, Any]]:  # fmt: skip
    """One row per (method, epoch): the mean of the figure's key over the method's finished seeds."""
    table = load_table(figure.table)
    base = runs_dir(runs_root, scale, figure.table, None)
    by_cell = runs_for_table(table, collect_runs(base), scale) if base.is_dir() else {}
    rows: list[dict[str, Any]] = []
    for cell in table.cells(scale):
        runs = by_cell.get(cell.id, [])
        used = [r for r in runs if r.status == "finished"] or [r for r in runs if r.status == "diverged"]
        for r in runs:
            if r not in used:
                printer(f"{figure.name}: {cell.id}: left out {r.path} ({r.status})")
        if not used:
            printer(f"{figure.name}: {cell.id}: no finished run in {base / cell.id}")
            continue
        xs, ys, _ = mean_curve(used, figure.key)
        for x, y in zip(xs, ys, strict=True):
            rows.append({"method": cell.id, "label": table.row_label(cell.row),
                         "epoch": int(x) if float(x).is_integer() else float(x), figure.key: float(y),
                         "seeds": len(used)})
    return rows


def draw(figure: HistoryFigure, rows: Sequence[dict[str, Any]], scale: str) -> Any:
    """One line per method of ``rows`` (the caller closes the figure)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    cmap = plt.get_cmap("tab10")
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for i, method in enumerate(methods):
        mine = [r for r in rows if r["method"] == method]
        ax.plot([r["epoch"] for r in mine], [r[figure.key] for r in mine], color=cmap(i % 10),
                label=mine[0]["label"], marker="o" if len(mine) < 15 else None, ms=3)
    if not methods:
        ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs: whole numbers
    ax.set_ylabel(figure.ylabel)
    ax.grid(alpha=0.3)
    if methods:
        ax.legend(fontsize=8)
    note = " — smoke scale, not the paper's setting" if scale == "smoke" else f" — {scale} scale"
    ax.set_title(f"{figure.title}{note}", fontsize=9)
    fig.tight_layout()
    return fig


def write_figure(figure: HistoryFigure, runs_root: str | Path, scale: str, out_root: str | Path = "results",
                 printer: Any = print) -> dict[str, Path]:  # fmt: skip
    """``<out_root>/<scale>/<figure>.csv`` and ``.png``; returns their paths."""
    rows = figure_rows(figure, runs_root, scale, printer)
    out = Path(out_root) / scale
    csv_path = write_rows(out / f"{figure.name}.csv", rows, columns=figure.columns)
    fig = draw(figure, rows, scale)
    png = out / f"{figure.name}.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return {"csv": csv_path, "png": png}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("figure", choices=sorted(FIGURES))
    p.add_argument("--scale", default="smoke", choices=["smoke", "full"])
    p.add_argument("--runs", default="runs", help="root of the run directories (default runs/)")
    p.add_argument("--out", default="results", help="root of the figures (default results/)")
    args = p.parse_args(argv)
    figure = FIGURES[args.figure]
    paths = write_figure(figure, args.runs, args.scale, args.out)
    n = len(read_csv(paths["csv"]))
    print(f"{figure.name}: {n} points -> {paths['csv']}, {paths['png']}")
    if n == 0:
        print(f"{figure.name}: no run of {figure.table} with a history at {args.scale} scale: "
              f"{figure.makes_runs} SCALE={args.scale}")
    return 0 if n else 1


if __name__ == "__main__":
    sys.exit(main())
