#!/usr/bin/env python
"""Run (or resume) one of the paper's tables and render it: what `make reproduce-tableN` calls.

    python scripts/reproduce_table.py table4 --scale smoke --seeds 0,1,2 --launcher joblib [--force]

Each cell is a Hydra multirun over the seeds into runs/<scale>/<table>/<cell>/seed<k>; cells already
finished are skipped; then results/<scale>/<table>.md, .csv, .tex, the plots and results/<scale>/claims.md
(the paper's claims checked on the rendered tables) are written and the table is printed. See
pws/results/reproduce.py. A seed whose metrics.json cannot be read is named and not run (exit status 1)
unless --force; a bad table definition is named with its line (exit status 2).

    python scripts/reproduce_table.py table4 --scale full --seeds 0,1,2 --plan   # the cost, launches nothing
    python scripts/reproduce_table.py table4 --scale full --plan --measure        # throughput measured here

--plan prints each cell's kind, throughput (from bench/results/, naming the file; --throughput FILE for
others; --measure times a few steps of each kind on this machine), its training images and device-hours,
and the total (pws/results/cost.py), then exits without launching anything.
"""

from __future__ import annotations

import argparse
import sys

from pws.paper.files import BadFile
from pws.paper.published import REFERENCES
from pws.results.reproduce import LAUNCHERS, print_report, reproduce


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.replace(" ", "").split(",") if s != ""]
    except ValueError:
        msg = f"seeds must be integers separated by commas, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("table", help="table1 .. table5 (experiments/<table>.yaml)")
    p.add_argument("--scale", default="smoke", choices=["smoke", "full"])
    p.add_argument("--seeds", type=_seeds, default=[0], help="comma-separated, e.g. 0,1,2 (default 0)")
    p.add_argument("--launcher", default="local", choices=sorted(LAUNCHERS))
    p.add_argument("--force", action="store_true", help="rerun finished cells (passes force=true)")
    p.add_argument("--grid", default=None, help="a reduced grid of the table (its `grids:` section)")
    p.add_argument("--cells", default=None, help="only these cell ids, comma-separated")
    p.add_argument("--cell-jobs", type=int, default=None,
                   help="cells launched at once (default: all for slurm; one per CPU at smoke scale; else 1)")
    p.add_argument("--runs", default="runs", help="root of the run directories (default runs/)")
    p.add_argument("--out", default="results", help="root of the rendered tables (default results/)")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="an extra Hydra override for every cell (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--stream", action="store_true", help="show the apps' output (else in launch.log)")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--reference", default="paper", choices=REFERENCES,
                   help="the numbers ours are set against: the paper's, or the authors' later ones "
                        "(default paper)")
    p.add_argument("--backbone-seed", type=int, default=0,
                   help="the seed of Table 5's run a Mask R-CNN row of Table 3 starts from (default 0)")
    p.add_argument("--plan", action="store_true",
                   help="print the device-hours of every cell and in total, launch nothing")
    p.add_argument("--throughput", action="append", default=[], metavar="FILE",
                   help="--plan: a bench_classify/bench_layers output to read throughputs from (repeatable; "
                        "default: the H200 tables in bench/results/)")
    p.add_argument("--measure", action="store_true",
                   help="--plan: time a few training steps of each cell kind on this machine instead")
    p.add_argument("--measure-device", default=None, help="--measure: cuda or cpu (default: cuda if present)")
    p.add_argument("--measure-steps", type=int, default=3, help="--measure: timed steps per kind (default 3)")
    args = p.parse_args(argv)
    extra = [o for ov in args.override for o in ov.split() if o]
    if args.plan:
        return plan_cost(args, extra)
    try:
        report = reproduce(
            args.table, scale=args.scale, seeds=args.seeds, launcher=args.launcher, force=args.force,
            grid=args.grid, runs_root=args.runs, out_root=args.out, extra_overrides=extra,
            cells=args.cells.split(",") if args.cells else None, cell_jobs=args.cell_jobs,
            dry_run=args.dry_run, stream=args.stream, plots=not args.no_plots,
            backbone_seed=args.backbone_seed, reference=args.reference,
        )
    except (BadFile, FileNotFoundError) as e:  # the table's definition, published.yaml
        print(f"reproduce_table: error: {e}", file=sys.stderr)
        return 2
    if report is not None:
        print_report(report)
        bad = [c for c in report.result.cells.values() if c.mean is None]
        if bad:
            print(f"{len(bad)} printed cells have no number (see the reasons in the table).")
        if report.problems:
            print("Runs with an unreadable metrics.json were not run again: --force moves the file aside "
                  "and runs them.")
            return 1
    return 0


def plan_cost(args: argparse.Namespace, extra: list[str]) -> int:
    """--plan: the cost of the table's cells (pws.results.cost), printed; nothing is launched."""
    from pws.engine.errors import ConfigError
    from pws.paper.experiments import load_table
    from pws.results.cost import DEFAULT_THROUGHPUT, format_cost, measure_kind, read_throughput, table_cost

    try:
        table = load_table(args.table)
        measured = [t for f in (args.throughput or DEFAULT_THROUGHPUT) for t in read_throughput(f)]
        measure = None
        if args.measure:
            import torch

            device = args.measure_device or ("cuda" if torch.cuda.is_available() else "cpu")
            measure = lambda kind: measure_kind(kind, device, steps=args.measure_steps)  # noqa: E731
        cost = table_cost(table, args.scale, len(args.seeds), measured, grid=args.grid,
                          cells=args.cells.split(",") if args.cells else None, extra_overrides=extra,
                          measure=measure)
    except (BadFile, FileNotFoundError, ConfigError, KeyError) as e:
        print(f"reproduce_table: error: {e}", file=sys.stderr)
        return 2
    format_cost(cost)
    return 0


if __name__ == "__main__":
    sys.exit(main())
