#!/usr/bin/env python
"""Hydra sweeps over gamma and LR, rendered as a table and a heatmap (`make sweep-gamma` / `sweep-lr`).

    python scripts/sweep.py gamma --scale smoke [--y 1e-5,1e-4,1e-3 --x 0.01,0.05,0.1] [--seeds 0,1]
    python scripts/sweep.py lr --y none,bn,wn,pws --x 0.02,0.1,0.2
    python scripts/sweep.py render runs/smoke/sweep-gamma --y-key norm.gamma --x-key optim.lr   # any folder

gamma: PWS, norm.gamma (rows) x optim.lr (columns); lr: method (rows) x optim.lr (columns). One Hydra
multirun into runs/<scale>/sweep-<name>/; the apps skip runs already finished; then
results/<scale>/sweep_<name>.md, .csv and .png (heatmap). A run whose metrics.json cannot be read is
named below the table (exit status 1) and its cell says so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pws.results.reproduce import LAUNCHERS
from pws.results.sweep import PRESETS, render_sweep, run_sweep, sweep_markdown


def _list(text: str | None) -> list[str] | None:
    return [s for s in text.replace(" ", "").split(",") if s] if text else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=[*PRESETS, "render"])
    p.add_argument("folder", nargs="?", help="render: the folder of runs")
    p.add_argument("--scale", default="smoke", choices=["smoke", "full"])
    p.add_argument("--seeds", default="0")
    p.add_argument("--launcher", default="local", choices=sorted(LAUNCHERS))
    p.add_argument("--force", action="store_true")
    p.add_argument("--y", default=None, help="row values (comma-separated)")
    p.add_argument("--x", default=None, help="column values (comma-separated)")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--app", default=None, help="the app module (default: the preset's, pws.classify)")
    p.add_argument("--runs", default="runs")
    p.add_argument("--out", default="results")
    p.add_argument("--y-key", default="norm.gamma", help="render: the row key")
    p.add_argument("--x-key", default="optim.lr", help="render: the column key")
    p.add_argument("--metric", default="top1_error", help="render: the metric")
    p.add_argument("--higher-is-better", action="store_true", help="render: e.g. for mAP")
    args = p.parse_args(argv)
    if args.what == "render":
        if not args.folder:
            p.error("render needs the folder of runs")
        res, paths = render_sweep(args.folder, args.y_key, args.x_key, args.metric, out_dir=args.out,
                                  stem=Path(args.folder).name.replace("-", "_"), yorder=_list(args.y),
                                  xorder=_list(args.x), lower_is_better=not args.higher_is_better)
    else:
        extra = [o for ov in args.override for o in ov.split() if o]
        res, paths = run_sweep(args.what, scale=args.scale, seeds=[int(s) for s in args.seeds.split(",")],
                               launcher=args.launcher, force=args.force, yvals=_list(args.y),
                               xvals=_list(args.x), extra_overrides=extra, app=args.app, runs_root=args.runs,
                               out_root=args.out)
    print(sweep_markdown(res))
    for key, path in paths.items():
        print(f"  {key:<4} {path}")
    if res.unreadable:
        print(f"{len(res.unreadable)} metrics.json file(s) could not be read (listed above).",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
