"""Hydra sweeps over gamma and LR (``make sweep-gamma`` / ``make sweep-lr``): one multirun, then a sweep
table (Markdown, CSV) and a heatmap (PNG).

The sweep is an ordinary Hydra multirun of an app, e.g.::

    python -m pws.classify -m scale=smoke data=digits model=plain_c norm=pws \\
        norm.gamma=1e-5,1e-4,1e-3,1e-2 optim.lr=0.02,0.05,0.1,0.2 seed=0 \\
        hydra.sweep.dir=runs/smoke/sweep-gamma hydra.sweep.subdir=gamma${norm.gamma}/lr${optim.lr}/seed${seed}

and :func:`render_sweep` works on any folder of runs: the value of each swept key is read from the run's
saved Hydra config (a group choice such as ``norm``, or a value such as ``optim.lr``).
"""

from __future__ import annotations

import csv
import io
import math
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pws.paper.experiments import REPO_ROOT
from pws.results.collect import MISSING, Run, collect_runs, normalize_value
from pws.results.reproduce import LAUNCHERS
from pws.results.tally import RunTally

# Presets: what `make sweep-gamma` and `make sweep-lr` run (Y=..., X=... choose the values from make). A
# preset's overrides and its row or column values are either one list for both scales or a {scale: list}
# mapping (preset_grid reads them). At full scale: the plain net on CIFAR-10 with the paper's 200-epoch
# schedule at the paper's LRs. At smoke scale the digits plain net at LRs around the smoke scale's own
# (0.01): the paper's 0.05-0.2 are its stress case there (docs/fidelity.md: the nets without output norms
# at chance or NaN), where every cell but BN's would say chance or NaN. 6 epochs per run (the smoke
# scale's 10: about 12 minutes a sweep): gamma 15 runs, lr 16 runs, 7.4 and 6.8 minutes measured on one CPU
# thread each (docs/tables.md#sweeps).
SMOKE_SWEEP = ["scale=smoke", "data=digits", "model=plain_c", "scale.classify.epochs=6"]
FULL_SWEEP = ["scale=full", "data=cifar10", "model=plain_c"]
PAPER_LRS = ["0.05", "0.1", "0.2"]
PRESETS: dict[str, dict[str, Any]] = {
    "gamma": {
        "app": "pws.classify",
        "overrides": {"smoke": [*SMOKE_SWEEP, "norm=pws"], "full": [*FULL_SWEEP, "norm=pws"]},
        "y": ("norm.gamma", ["1e-5", "1e-4", "1e-3", "1e-2", "auto"]),  # auto: the paper's 0.1 sqrt(n_l / 2)
        "x": ("optim.lr", {"smoke": ["0.003", "0.01", "0.03"], "full": PAPER_LRS}),
        "metric": "top1_error",
        "title": "PWS on the plain net: top-1 error over gamma x LR",
    },
    "lr": {
        "app": "pws.classify",
        "overrides": {"smoke": SMOKE_SWEEP, "full": FULL_SWEEP},
        "y": ("norm", ["none", "bn", "wn", "pws"]),
        "x": ("optim.lr", {"smoke": ["0.003", "0.01", "0.03", "0.1"], "full": PAPER_LRS}),
        "metric": "top1_error",
        "title": "Plain net: top-1 error over method x LR",
    },
}


def preset_grid(preset: str, scale: str) -> tuple[list[str], tuple[str, list[str]], tuple[str, list[str]]]:
    """A preset at ``scale``: its overrides, ``(row key, row values)`` and ``(column key, column values)``."""
    p = PRESETS[preset]

    def at_scale(values: Any) -> list[str]:
        return list(values[scale] if isinstance(values, dict) else values)

    (ykey, yvals), (xkey, xvals) = p["y"], p["x"]
    return at_scale(p["overrides"]), (ykey, at_scale(yvals)), (xkey, at_scale(xvals))


def _subdir_part(key: str) -> str:
    """A run-dir component naming the value of ``key``: ``gamma${norm.gamma}`` for a value,
    ``norm-${hydra:runtime.choices.norm}`` for a group choice."""
    if "." in key:
        return f"{key.rsplit('.', 1)[-1]}${{{key}}}"
    return f"{key}-${{hydra:runtime.choices.{key}}}"


def sweep_command(app: str, overrides: list[str], y: tuple[str, list[str]], x: tuple[str, list[str]], *,
                  seeds: list[int], sweep_dir: Path, launcher: str = "local",
                  force: bool = False) -> list[str]:
    """The Hydra multirun of a sweep: rows ``y`` x columns ``x`` x seeds, into
    ``<sweep_dir>/<y value>/<x value>/seed<k>``."""
    (ykey, yvals), (xkey, xvals) = y, x
    return [
        sys.executable, "-m", app, "-m", *overrides,
        f"{ykey}={','.join(yvals)}", f"{xkey}={','.join(xvals)}",
        "seed=" + ",".join(str(s) for s in seeds),
        *(["force=true"] if force else []),
        f"hydra/launcher={LAUNCHERS[launcher]}",
        f"hydra.sweep.dir={sweep_dir}",
        f"hydra.sweep.subdir={_subdir_part(ykey)}/{_subdir_part(xkey)}/seed${{seed}}",
    ]


@dataclass(kw_only=True)
class SweepCell(RunTally):
    """One point of the sweep grid: the mean over its finished runs, or why there is none."""

    def text(self, decimals: int = 2) -> str:
        if self.values:
            t = f"{self.mean:.{decimals}f}"
            if self.std is not None:
                t += f" ± {self.std:.{decimals}f}"
            if self.diverged_seeds:
                t += f" ({len(self.diverged_seeds)} diverged)"
            return t
        if self.diverged_seeds:
            return "NaN"
        why = self.why()
        return f"- ({why or 'not run'})"


@dataclass
class SweepResult:
    ykey: str
    xkey: str
    yvals: list[Any]
    xvals: list[Any]
    metric: str
    cells: dict[tuple[Any, Any], SweepCell]
    root: str
    scale: str | None
    title: str
    n_runs: int
    command: str | None = None
    unreadable: list[str] = field(default_factory=list)  # every unreadable metrics.json below the root


def _label(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _sort_key(v: Any) -> tuple[int, Any]:
    return (0, v) if isinstance(v, float) else (1, str(v))


def collect_sweep(root: str | os.PathLike[str], ykey: str, xkey: str, metric: str, *, title: str = "",
                  yorder: list[str] | None = None, xorder: list[str] | None = None,
                  runs: list[Run] | None = None) -> SweepResult:
    """The sweep grid of ``metric`` over (``ykey``, ``xkey``) from every run below ``root``."""
    runs = collect_runs(root) if runs is None else runs
    cells: dict[tuple[Any, Any], SweepCell] = {}
    ys, xs, scales = set(), set(), set()
    n = 0
    unreadable = [str(run.unreadable) for run in runs if run.unreadable is not None]
    for run in runs:
        yv, xv = run.value(ykey), run.value(xkey)
        if yv is MISSING or xv is MISSING:
            continue
        yv, xv = normalize_value(yv), normalize_value(xv)
        ys.add(yv)
        xs.add(xv)
        n += 1
        if run.scale:
            scales.add(run.scale)
        cells.setdefault((yv, xv), SweepCell(metric=metric)).add(run)

    def order(found: set, given: list[str] | None) -> list[Any]:
        if given:
            wanted = [normalize_value(v) for v in given]
            return wanted + sorted((v for v in found if v not in wanted), key=_sort_key)
        return sorted(found, key=_sort_key)

    return SweepResult(ykey=ykey, xkey=xkey, yvals=order(ys, yorder), xvals=order(xs, xorder), metric=metric,
                       cells=cells, root=str(root), scale=",".join(sorted(scales)) or None,
                       title=title or f"{metric} over {ykey} x {xkey}", n_runs=n, unreadable=unreadable)


def sweep_markdown(res: SweepResult, decimals: int = 2) -> str:
    scale = res.scale or "unknown"
    lines = [f"# Sweep: {res.title} ({scale} scale)", ""]
    if res.scale == "smoke":
        lines += ["**Smoke scale, not the paper's setting**: a check of the pipeline on small data.", ""]
    if res.command:
        lines += [f"Command: `{res.command}`", ""]
    lines += [
        f"Runs: `{res.root}` · {res.n_runs} runs · rows `{res.ykey}`, columns `{res.xkey}`, cells "
        f"`{res.metric}` (mean ± std over seeds; NaN: diverged; a dash: no number, with the reason).",
        "",
        "| " + " | ".join([f"{res.ykey} \\ {res.xkey}"] + [_label(x) for x in res.xvals]) + " |",
        "| " + " | ".join([":--"] + ["--:"] * len(res.xvals)) + " |",
    ]
    for y in res.yvals:
        row = [_label(y)] + [res.cells.get((y, x), SweepCell()).text(decimals).replace("|", "\\|")
                             for x in res.xvals]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    if res.unreadable:
        lines += ["Files that could not be read (their runs have no number above):", ""]
        lines += [f"* {problem}" for problem in res.unreadable]
        lines.append("")
    return "\n".join(lines)


def sweep_csv(res: SweepResult) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([res.ykey, res.xkey, "metric", "mean", "std", "n_finished", "n_diverged", "n_failed",
                "status", "text"])
    for y in res.yvals:
        for x in res.xvals:
            c = res.cells.get((y, x), SweepCell())
            m, s = c.mean, c.std
            mean = "" if m is None else ("NaN" if math.isnan(m) else m)
            w.writerow([_label(y), _label(x), res.metric, mean,
                        "" if s is None else s, len(c.values), len(c.diverged_seeds),
                        len(c.failed) + len(c.missing_metric), c.state, c.text()])
    return buf.getvalue()


def plot_heatmap(res: SweepResult, path: str | os.PathLike[str], *, lower_is_better: bool = True) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid = np.full((len(res.yvals), len(res.xvals)), np.nan)
    for i, y in enumerate(res.yvals):
        for j, x in enumerate(res.xvals):
            m = res.cells.get((y, x), SweepCell()).mean
            if m is not None:
                grid[i, j] = m
    fig, ax = plt.subplots(figsize=(max(7.0, 1.5 * len(res.xvals) + 3), 0.8 * len(res.yvals) + 2.6))
    cmap = plt.get_cmap("viridis_r" if lower_is_better else "viridis").with_extremes(bad="lightgrey")
    finite = grid[np.isfinite(grid)]
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto",
                   vmin=finite.min() if finite.size else 0, vmax=finite.max() if finite.size else 1)
    for i, y in enumerate(res.yvals):
        for j, x in enumerate(res.xvals):
            c = res.cells.get((y, x), SweepCell())
            m = c.mean
            if m is None:  # no number: the cell's state (running, stopped, failed, unreadable, not run)
                text, color = c.state.replace(" ", "\n"), "dimgrey"
            elif math.isnan(m):
                text, color = "NaN", "darkred"
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="//",
                                           edgecolor="darkred", lw=0))
            else:
                text = f"{m:.2f}" + (f"\n±{c.std:.2f}" if c.std is not None else "")
                norm = (m - finite.min()) / (np.ptp(finite) or 1.0) if finite.size else 0.5
                dark = norm > 0.5 if lower_is_better else norm < 0.5
                color = "white" if dark else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=9, color=color, fontweight="bold")
    ax.set_xticks(range(len(res.xvals)))
    ax.set_xticklabels([_label(x) for x in res.xvals])
    ax.set_yticks(range(len(res.yvals)))
    ax.set_yticklabels([_label(y) for y in res.yvals])
    ax.set_xlabel(res.xkey)
    ax.set_ylabel(res.ykey)
    cb = fig.colorbar(im, ax=ax)
    cb.set_label(f"{res.metric} ({'lower' if lower_is_better else 'higher'} is better)")
    scale = f"{res.scale} scale" + (", not the paper's setting" if res.scale == "smoke" else "")
    ax.set_title(f"{res.title}\n{scale}; NaN (hatched): diverged; a word: no number (why)", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def render_sweep(root: str | os.PathLike[str], ykey: str, xkey: str, metric: str, *,
                 out_dir: str | os.PathLike[str], stem: str, title: str = "", yorder: list[str] | None = None,
                 xorder: list[str] | None = None, lower_is_better: bool = True,
                 command: str | None = None) -> tuple[SweepResult, dict]:
    """Write ``<stem>.md``, ``<stem>.csv`` and ``<stem>.png`` (heatmap) for the sweep below ``root``."""
    res = collect_sweep(root, ykey, xkey, metric, title=title, yorder=yorder, xorder=xorder)
    res.command = command
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / f"{stem}.md", "csv": out / f"{stem}.csv", "png": out / f"{stem}.png"}
    paths["md"].write_text(sweep_markdown(res))
    paths["csv"].write_text(sweep_csv(res))
    plot_heatmap(res, paths["png"], lower_is_better=lower_is_better)
    return res, paths


def run_sweep(preset: str, *, scale: str = "smoke", seeds: list[int] | None = None, launcher: str = "local",
              force: bool = False, yvals: list[str] | None = None, xvals: list[str] | None = None,
              extra_overrides: list[str] | None = None, app: str | None = None,
              runs_root: str | os.PathLike[str] = "runs", out_root: str | os.PathLike[str] = "results",
              printer=print) -> tuple[SweepResult, dict]:
    """Run a preset sweep as one Hydra multirun (resuming: the apps skip finished runs), then render it."""
    p = PRESETS[preset]
    overrides, (ykey, ydef), (xkey, xdef) = preset_grid(preset, scale)
    yv, xv = yvals or ydef, xvals or xdef
    sweep_dir = (Path(runs_root) / scale / f"sweep-{preset}").resolve()
    cmd = sweep_command(app or p["app"], overrides + list(extra_overrides or []), (ykey, yv),
                        (xkey, xv), seeds=seeds or [0], sweep_dir=sweep_dir, launcher=launcher, force=force)
    printer(f"sweep-{preset}: {len(yv)} x {len(xv)} x {len(seeds or [0])} runs -> {sweep_dir}")
    printer("$ " + " ".join(cmd))
    env = dict(os.environ)
    env.setdefault("HYDRA_FULL_ERROR", "1")
    rc = subprocess.call(cmd, cwd=REPO_ROOT, env=env)
    if rc != 0:
        printer(f"sweep-{preset}: the multirun exited with status {rc}; rendering what finished")
    return render_sweep(sweep_dir, ykey, xkey, p["metric"], out_dir=Path(out_root) / scale,
                        stem=f"sweep_{preset}", title=p["title"], yorder=yv, xorder=xv,
                        command=" ".join(shlex.quote(a) for a in ["python", *cmd[1:]]))
