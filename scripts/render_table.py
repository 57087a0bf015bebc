#!/usr/bin/env python
"""Render one of the paper's tables from a folder of runs (nothing is run).

    python scripts/render_table.py table4 --runs runs/smoke/table4 --scale smoke [--out results/smoke]

Writes <out>/<table>.md, .csv, .tex, <table>_vs_paper.png, <table>_curves.png, <out>/claims.md (the
paper's claims checked on the tables rendered in <out>) and logs the table to wandb (offline unless
WANDB_MODE says otherwise), then prints the Markdown table. --reference authors sets ours against the
authors' later numbers instead of the paper's. Exit status 1 when some run's
metrics.json could not be read (named; its cell says so), 2 when the table's definition or
results/published.yaml cannot be (named, with the line).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pws.paper.files import BadFile
from pws.paper.published import REFERENCES
from pws.results.report import render_table
from pws.results.reproduce import print_report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("table", help="table1 .. table5, or a path to a table YAML")
    p.add_argument("--runs", nargs="+", default=None, help="folders of runs (default runs/<scale>/<table>)")
    p.add_argument("--scale", default="smoke", choices=["smoke", "full"])
    p.add_argument("--grid", default=None, help="a reduced grid of the table")
    p.add_argument("--seeds", default=None, help="only these seeds, comma-separated (default: all found)")
    p.add_argument("--out", default=None, help="output folder (default results/<scale>)")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--reference", default="paper", choices=REFERENCES,
                   help="the numbers ours are set against: the paper's, or the authors' later ones (their "
                        "READMEs; the paper's where they published none); default paper")
    p.add_argument("--wandb", default=None, choices=["offline", "online", "disabled"],
                   help="wandb mode for the logged table (default: $WANDB_MODE or offline)")
    args = p.parse_args(argv)
    name = Path(args.table).stem
    runs = args.runs or [str(Path("runs") / args.scale / (f"{name}_{args.grid}" if args.grid else name))]
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    try:
        report = render_table(args.table, runs, args.scale, args.out or Path("results") / args.scale,
                              grid=args.grid, seeds=seeds, plots=not args.no_plots, wandb_mode=args.wandb,
                              reference=args.reference)
    except (BadFile, FileNotFoundError) as e:  # the table's definition or results/published.yaml
        print(f"render_table: error: {e}", file=sys.stderr)
        return 2
    print_report(report)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
