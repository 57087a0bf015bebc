"""Figure 5 of the paper ("Top-5 error for ImageNet val set"): top-5 error against epochs for Table 5's runs.

    python -m pws.results.figure5 --scale smoke|full [--runs runs] [--out results]   # make reproduce-figure5

Reads the histories of Table 5's ResNet-50 runs below ``<runs>/<scale>/table5/`` (every classification run
records ``top5_error`` after each epoch) and writes ``<out>/<scale>/figure5.csv`` (one line per method and
epoch: the mean over the seeds, and how many seeds) and ``figure5.png`` (one line per method). The curve of
a method is the one Table 5's curves draw: the mean over its finished runs (its diverged ones when none
finished; :func:`pws.results.plots.mean_curve`); runs not finished are left out, and named on stdout.
Nothing is trained: ``make reproduce-table5`` makes the runs. (Figure 4, CIFAR-10's top-1 error at LR 5e-2,
is Table 4's curves plot, ``results/<scale>/table4_curves.png``.)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pws.diagnostics.figures import read_csv
from pws.diagnostics.probe import write_rows
from pws.paper.experiments import load_table
from pws.results.collect import collect_runs, runs_for_table
from pws.results.plots import mean_curve, plt
from pws.results.render import runs_dir

KEY = "top5_error"
TABLE = "table5"
COLUMNS = ("method", "label", "epoch", KEY, "seeds")


def figure5_rows(runs_root: str | Path, scale: str, printer: Any = print) -> list[dict[str, Any]]:
    """One row per (method, epoch): the mean top-5 error over the method's finished seeds."""
    table = load_table(TABLE)
    base = runs_dir(runs_root, scale, TABLE, None)
    by_cell = runs_for_table(table, collect_runs(base), scale) if base.is_dir() else {}
    rows: list[dict[str, Any]] = []
    for cell in table.cells(scale):
        runs = by_cell.get(cell.id, [])
        used = [r for r in runs if r.status == "finished"] or [r for r in runs if r.status == "diverged"]
        for r in runs:
            if r not in used:
                printer(f"figure5: {cell.id}: left out {r.path} ({r.status})")
        if not used:
            printer(f"figure5: {cell.id}: no finished run in {base / cell.id}")
            continue
        xs, ys, _ = mean_curve(used, KEY)
        for x, y in zip(xs, ys, strict=True):
            rows.append({"method": cell.id, "label": table.row_label(cell.row),
                         "epoch": int(x) if float(x).is_integer() else float(x), KEY: float(y),
                         "seeds": len(used)})
    return rows


def figure5_figure(rows: Sequence[dict[str, Any]], scale: str) -> Any:
    """One line per method of ``rows`` (the caller closes the figure)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    cmap = plt.get_cmap("tab10")
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for i, method in enumerate(methods):
        mine = [r for r in rows if r["method"] == method]
        ax.plot([r["epoch"] for r in mine], [r[KEY] for r in mine], color=cmap(i % 10),
                label=mine[0]["label"], marker="o" if len(mine) < 15 else None, ms=3)
    if not methods:
        ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xlabel("epoch")
    ax.set_ylabel("top-5 error (%)")
    ax.grid(alpha=0.3)
    if methods:
        ax.legend(fontsize=8)
    note = " — smoke scale, not the paper's setting" if scale == "smoke" else f" — {scale} scale"
    ax.set_title(f"Figure 5: top-5 error, Table 5's ResNet-50 runs{note}", fontsize=9)
    fig.tight_layout()
    return fig


def write_figure5(runs_root: str | Path, scale: str, out_root: str | Path = "results",
                  printer: Any = print) -> dict[str, Path]:
    """``<out_root>/<scale>/figure5.csv`` and ``.png``; returns their paths."""
    rows = figure5_rows(runs_root, scale, printer)
    out = Path(out_root) / scale
    csv_path = write_rows(out / "figure5.csv", rows, columns=COLUMNS)
    fig = figure5_figure(rows, scale)
    png = out / "figure5.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return {"csv": csv_path, "png": png}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", default="smoke", choices=["smoke", "full"])
    p.add_argument("--runs", default="runs", help="root of the run directories (default runs/)")
    p.add_argument("--out", default="results", help="root of the figures (default results/)")
    args = p.parse_args(argv)
    paths = write_figure5(args.runs, args.scale, args.out)
    n = len(read_csv(paths["csv"]))
    print(f"figure5: {n} points -> {paths['csv']}, {paths['png']}")
    if n == 0:
        print(f"figure5: no Table 5 run with a history at {args.scale} scale: "
              f"make reproduce-table5 SCALE={args.scale}")
    return 0 if n else 1


if __name__ == "__main__":
    sys.exit(main())
