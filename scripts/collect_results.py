#!/usr/bin/env python
"""Collect every run below any folder: one CSV line per run, and each paper table those runs belong to.

    python scripts/collect_results.py runs/                  # everything under runs/
    python scripts/collect_results.py some/multirun/dir --out results/mine --scale smoke

A run directory is one holding metrics.json and/or Hydra's .hydra/. Runs are assigned to the paper's
table cells by their table/cell keys, or else by matching their Hydra overrides to experiments/*.yaml.
Writes <out>/runs.csv (all runs) and, for every table with runs, <out>/<table>.md/.csv/.tex and plots
(one set per scale found, in <out>/<scale>/ when several).

A file that cannot be read (a run's metrics.json, a table definition experiments/tableN.yaml,
results/published.yaml) is named on stderr and everything else is collected: a run with an unreadable
metrics.json is in runs.csv with status `unreadable` and its table cell says so; a bad table definition
leaves that table out. The exit status is then 1.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from pws.paper.experiments import TABLES, load_table
from pws.paper.files import BadFile
from pws.results.collect import collect_runs, runs_for_table, runs_table
from pws.results.report import build, write


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", help="folders holding run directories (searched recursively)")
    p.add_argument("--out", default="results/collected", help="output folder (default results/collected)")
    p.add_argument("--scale", default=None, choices=["smoke", "full"], help="only runs of this scale")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--wandb", default=None, choices=["offline", "online", "disabled"])
    args = p.parse_args(argv)

    runs = collect_runs(args.folders)
    if args.scale:
        runs = [r for r in runs if r.scale in (None, args.scale)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    header, lines = runs_table(runs)
    with open(out / "runs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(lines)
    print(f"{len(runs)} runs below {', '.join(args.folders)} -> {out / 'runs.csv'}")
    # Files that could not be read: named, and everything else is collected; the exit status says so.
    problems = {str(r.unreadable): None for r in runs if r.unreadable is not None}

    scales = sorted({r.scale for r in runs if r.scale}) or ["smoke"]
    for name in TABLES:
        try:
            table = load_table(name)
        except (BadFile, FileNotFoundError) as e:  # one bad definition stops that table only
            print(f"{name}: not collected: {e}", file=sys.stderr)
            problems[str(e)] = None
            continue
        for scale in scales:
            try:
                if not runs_for_table(table, runs, scale):
                    continue
                dest = out / scale if len(scales) > 1 else out
                report = write(build(table, args.folders, scale, runs=runs), dest, plots=not args.no_plots,
                               wandb_mode=args.wandb)
            except BadFile as e:  # results/published.yaml, say
                print(f"{table.name} ({scale}): not collected: {e}", file=sys.stderr)
                problems[str(e)] = None
                continue
            res = report.result
            n_num = sum(1 for c in res.cells.values() if c.mean is not None)
            print(f"{table.name} ({scale}): {res.n_runs} runs, {n_num}/{len(res.cells)} printed cells with a "
                  f"number -> {report.paths['md']}")
    if problems:
        print(f"{len(problems)} file(s) could not be read; everything else was collected:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
