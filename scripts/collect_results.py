#!/usr/bin/env python
"""Collect every run below any folder: one CSV line per run, and each paper table those runs belong to.

    python scripts/collect_results.py runs/                  # everything under runs/
    python scripts/collect_results.py some/multirun/dir --out results/mine --scale smoke

A run directory is one holding metrics.json and/or Hydra's .hydra/. Runs are assigned to the paper's
table cells by their table/cell keys, or else by matching their Hydra overrides to experiments/*.yaml.
Writes <out>/runs.csv (all runs) and, for every table with runs, <out>/<table>.md/.csv/.tex and plots
(one set per scale found, in <out>/<scale>/ when several).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from pws.paper.experiments import all_tables
from pws.results.collect import collect_runs, runs_for_table
from pws.results.report import build, write

RUN_FIELDS = ["path", "table", "cell", "seed", "scale", "status", "error"]


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
    metrics = sorted({k for r in runs for k, v in (r.record or {}).items()
                      if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "seed"})
    with open(out / "runs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(RUN_FIELDS + metrics + ["overrides"])
        for r in runs:
            w.writerow([str(r.path), r.table or "", r.cell or "", "" if r.seed is None else r.seed,
                        r.scale or "", r.status, r.error or "" if r.status != "finished" else ""]
                       + [(r.record or {}).get(m, "") for m in metrics] + [" ".join(r.overrides)])
    print(f"{len(runs)} runs below {', '.join(args.folders)} -> {out / 'runs.csv'}")

    scales = sorted({r.scale for r in runs if r.scale}) or ["smoke"]
    for table in all_tables():
        for scale in scales:
            if not runs_for_table(table, runs, scale):
                continue
            dest = out / scale if len(scales) > 1 else out
            report = write(build(table, args.folders, scale, runs=runs), dest, plots=not args.no_plots,
                           wandb_mode=args.wandb)
            res = report.result
            n_num = sum(1 for c in res.cells.values() if c.mean is not None)
            print(f"{table.name} ({scale}): {res.n_runs} runs, {n_num}/{len(res.cells)} printed cells with a "
                  f"number -> {report.paths['md']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
