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

    python scripts/reproduce_table.py table2,figure3_grid --scale full --plan    # a shared run counted once

--plan prints each cell's kind, throughput (the whole app's, from the rehearsal tables in
bench/results/rehearsal/, naming the file, device and date; --throughput FILE for another rehearsal table;
--measure rehearses one cell of each kind on this machine first), its training images and device-hours,
and the total (pws/results/cost.py), then exits without launching anything.

    python scripts/reproduce_table.py table1 --scale full --rehearse [--cells bs2/pws] [--data-root DIR]

--rehearse runs every full-scale cell (or those named) through its app at its full-scale config for a
few iterations and one evaluation over a handful of test images (generated stand-ins where the data is
not there), into <runs>/rehearsal/, and writes <out>/rehearsal/TABLE.md and .csv (status, seconds per
iteration, images/s, peak memory, device, device-hours of a seed); exit status 1 if a cell failed
(pws/results/rehearsal.py).
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
    p.add_argument("table", help="table1 .. table5 (experiments/<table>.yaml); with --plan, several "
                                 "separated by commas (a run they share counted once)")
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
    p.add_argument("--detach", action="store_true",
                   help="--launcher slurm: submit the jobs and return; run again to see their states, submit "
                        "what is neither queued, running nor done, and render what has finished")
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
                   help="--plan: a rehearsal table (CSV) to read the throughputs from (repeatable; default: "
                        "those in bench/results/rehearsal/)")
    p.add_argument("--measure", action="store_true",
                   help="--plan: rehearse one cell of each kind on this machine first and use its speed")
    p.add_argument("--rehearse", action="store_true",
                   help="run every full-scale cell for a few iterations and one small evaluation; write "
                        "<out>/rehearsal/TABLE.md and .csv")
    p.add_argument("--data-root", default=None,
                   help="--rehearse: the data sets' root (default: the configs'; generated stand-ins where "
                        "a data set is not there)")
    p.add_argument("--iters", type=int, default=None,
                   help="--rehearse/--measure: training iterations per cell (default 5: 2 warm-up, 3 timed)")
    p.add_argument("--eval-images", type=int, default=None,
                   help="--rehearse: test images of the one evaluation (default 4)")
    p.add_argument("--batch", type=int, default=None,
                   help="--rehearse: a per-process batch other than the cells' (stated in the table)")
    p.add_argument("--device", default=None, help="--rehearse/--measure: cuda or cpu (default: cuda if any)")
    args = p.parse_args(argv)
    extra = [o for ov in args.override for o in ov.split() if o]
    if args.rehearse:
        return rehearse_table(args, extra)
    if args.plan:
        return plan_cost(args, extra)
    if args.detach and args.launcher != "slurm":
        print("reproduce_table: error: --detach submits SLURM jobs and returns: it needs --launcher slurm",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        report = reproduce(
            args.table, scale=args.scale, seeds=args.seeds, launcher=args.launcher, force=args.force,
            grid=args.grid, runs_root=args.runs, out_root=args.out, extra_overrides=extra,
            cells=args.cells.split(",") if args.cells else None, cell_jobs=args.cell_jobs,
            dry_run=args.dry_run, stream=args.stream, plots=not args.no_plots,
            backbone_seed=args.backbone_seed, reference=args.reference, detach=args.detach,
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


def rehearsal_options(args: argparse.Namespace):
    from pws.results.rehearsal import DEFAULT_ITERS, EVAL_IMAGES, Options

    return Options(iters=args.iters or DEFAULT_ITERS, eval_images=args.eval_images or EVAL_IMAGES,
                   batch=args.batch, data_root=args.data_root, launcher=args.launcher, runs_root=args.runs,
                   device=args.device, stream=args.stream)  # fmt: skip


def rehearse_table(args: argparse.Namespace, extra: list[str]) -> int:
    """--rehearse: the full-scale cells (or those named), a few iterations each; 1 if one failed."""
    from pws.engine.errors import ConfigError
    from pws.results.rehearsal import rehearse, write_table

    if args.scale != "full":
        print("reproduce_table: error: --rehearse rehearses the full scale (--scale full)", file=sys.stderr)
        return 2
    options = rehearsal_options(args)
    try:
        rows = rehearse(args.table, options, cells=args.cells.split(",") if args.cells else None,
                        extra_overrides=extra, backbone_seed=args.backbone_seed)  # fmt: skip
    except (BadFile, FileNotFoundError, ConfigError, KeyError, ValueError) as e:
        print(f"reproduce_table: error: {e}", file=sys.stderr)
        return 2
    paths = write_table(args.table, rows, args.out, options)
    print(paths["md"].read_text())
    print(f"Files: {paths['md']}, {paths['csv']}")
    return 0 if all(r.ok for r in rows) else 1


def plan_cost(args: argparse.Namespace, extra: list[str]) -> int:
    """--plan: the cost of the table's cells (pws.results.cost), printed; nothing is launched (--measure:
    one rehearsal per cell kind first). Several tables (``table2,figure3_grid``) are planned in turn, a run
    two of them share counted once, and their total printed."""
    from pws.engine.errors import ConfigError
    from pws.paper.experiments import load_table
    from pws.results.cost import default_throughput_files, format_cost, read_throughput, table_cost

    cells = args.cells.split(",") if args.cells else None
    counted: dict[str, str] = {}
    costs = []
    try:
        for name in args.table.split(","):
            table = load_table(name)
            if args.measure:
                from pws.results.rehearsal import measure

                measured = measure(table, rehearsal_options(args), args.scale, grid=args.grid, cells=cells,
                                   extra_overrides=extra, out_root=args.out)  # fmt: skip
            else:
                files = args.throughput or default_throughput_files()
                measured = [t for f in files for t in read_throughput(f)]
            costs.append(table_cost(table, args.scale, len(args.seeds), measured, grid=args.grid,
                                    cells=cells, extra_overrides=extra, counted=counted))  # fmt: skip
    except (BadFile, FileNotFoundError, ConfigError, KeyError, ValueError) as e:
        print(f"reproduce_table: error: {e}", file=sys.stderr)
        return 2
    for cost in costs:
        format_cost(cost)
    if len(costs) > 1:
        shared = sum(1 for cost in costs for c in cost.cells if c.shared_with)
        hours = sum(c.hours for c in costs)
        print(f"all {len(costs)} tables: {hours:,.2f} device-hours, {len(counted)} distinct runs per seed "
              f"({shared} cells share a run counted once)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
