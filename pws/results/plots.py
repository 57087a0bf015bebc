"""Figures next to each rendered table (matplotlib, PNG).

* ``<stem>_vs_paper.png``: per printed column, our value per row (the mean over seeds as the bar, its 95%
  interval as the error bar, each seed a dot; ``n = 1`` above a bar whose interval is unknown) beside the
  reference's (the paper's, or the authors'); diverged cells are marked NaN and runs without a number with
  their status, as in the table.
* ``<stem>_curves.png``: training curves per method like the paper's Figures 3-5: the training loss and
  the test error (or mAP) against epochs, one panel per run column, one line per row (mean over seeds).

No number of a run without a result is drawn as one: in the bar chart a cell without a number has its
status written where its bar would be (``running``, ``stopped``, ``failed``, ``unreadable``, ``not run``;
``NaN`` for a diverged cell); in the curves the solid line of a row is the mean over its finished runs
(its diverged ones when none finished), and the runs still running, stopped or failed are a dashed line
(the curve so far) ending in their status.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from pws.results.aggregate import TableResult
from pws.results.collect import Run

LOSS_KEYS = ("train_loss", "loss")
EVAL_KEYS = ("test_error", "top1_error", "val_error", "mAP", "bbox_mAP", "test_acc")
EPOCH_KEYS = ("epoch", "iter", "step")
OURS_COLOR = "tab:blue"
PAPER_COLOR = "tab:orange"


def _mark(ax: Any, x: float, ymax: float, text: str, color: str) -> None:
    """A cell without a bar: its status written upright where the bar would be."""
    ax.text(x, 0.02 * ymax, text, ha="center", va="bottom", rotation=90, fontsize=8, color=color,
            fontweight="bold")


def _scale_note(res: TableResult) -> str:
    if res.scale == "smoke":
        return " — smoke scale, not the paper's setting"
    return f" — {res.scale} scale"


def plot_vs_paper(res: TableResult, path: str | Path) -> Path:
    """Bar chart of ours vs the paper per cell; one panel per printed column."""
    fig = vs_paper_figure(res)
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def vs_paper_figure(res: TableResult) -> Any:
    """The figure of :func:`plot_vs_paper` (the caller closes it)."""
    displays = res.displays
    n = len(displays)
    ncols = min(n, 2)
    nrows = math.ceil(n / ncols)
    width = max(6.0, 0.9 * len(res.rows) + 2.5)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, 3.8 * nrows), squeeze=False)
    labels = [res.table.row_label(r) for r in res.rows]
    x = np.arange(len(res.rows))
    w = 0.38
    for k, (i, d) in enumerate(displays):
        ax = axes[k // ncols][k % ncols]
        ours = [res.cell(r, i) for r in res.rows]
        ymax = 0.0
        for c in ours:
            tops = [*c.values, c.mean, c.paper, c.interval.high if c.interval else None]
            ymax = max([ymax, *(v for v in tops if v is not None and math.isfinite(v))])
        ymax = ymax or 1.0
        for j, c in enumerate(ours):
            m = c.mean
            if m is not None and not math.isnan(m):
                ax.bar(x[j] - w / 2, m, w, color=OURS_COLOR, gid="ours")
                ci = c.interval
                if ci is not None:
                    ax.errorbar([x[j] - w / 2], [m], yerr=[[m - ci.low], [ci.high - m]], fmt="none",
                                ecolor="black", capsize=3, gid="ci")
                above = ci.high if ci is not None else max(c.values)
                label = c.fmt(m) + ("" if ci is not None else "\nn = 1")
                ax.text(x[j] - w / 2, above + 0.01 * ymax, label, ha="center", va="bottom",
                        fontsize=7, color=OURS_COLOR)
                if len(c.values) > 1:
                    ax.scatter([x[j] - w / 2] * len(c.values), c.values, s=9, color="navy", zorder=3)
            else:
                _mark(ax, x[j] - w / 2, ymax, "NaN" if c.status == "diverged" else c.status, OURS_COLOR)
            p = c.paper
            if p is not None and not math.isnan(p):
                ax.bar(x[j] + w / 2, p, w, color=PAPER_COLOR, alpha=0.85, gid="reference")
            else:
                _mark(ax, x[j] + w / 2, ymax, "NaN" if p is not None else "none", PAPER_COLOR)
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=30 if max(len(s) for s in labels) > 6 else 0, ha="right"
                           if max(len(s) for s in labels) > 6 else "center", fontsize=8)
        better = "higher" if d.higher_is_better else "lower"
        ax.set_title(f"{d.label}", fontsize=10)
        ax.set_ylabel(f"{d.metric} ({better} is better)", fontsize=9)
        ax.set_ylim(0, ymax * 1.15)
        ax.grid(axis="y", alpha=0.3)
    for k in range(n, nrows * ncols):
        axes[k // ncols][k % ncols].axis("off")
    from matplotlib.patches import Patch

    ours_label = "ours (mean; error bar: 95% CI, Student's t over seeds; dots: seeds)" if len(res.seeds) > 1 \
        else "ours (one seed: interval unknown)"
    fig.legend(handles=[Patch(color=OURS_COLOR, label=ours_label),
                        Patch(color=PAPER_COLOR, label=res.reference)],
               loc="upper right", fontsize=8, ncol=2)
    fig.suptitle(f"{res.table.title}: ours vs {res.reference}{_scale_note(res)}", fontsize=11, x=0.45)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def _flat(entry: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A history entry with nested dicts flattened (detection: ``{"val": {"pascal_voc/mAP": ...}}`` ->
    ``val/pascal_voc/mAP``)."""
    out: dict[str, Any] = {}
    for k, v in entry.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _first_key(history: list[dict[str, Any]], keys: tuple[str, ...], suffix: str | None = None) -> str | None:
    for key in keys:
        if any(key in h and h[key] is not None for h in history):
            return key
    if suffix:  # e.g. detection's val/pascal_voc/mAP, val/coco/bbox_mAP
        for h in history:
            for key in h:
                if key.startswith("val/") and key.endswith(suffix):
                    return key
    return None


def _percent_factor(key: str) -> float:
    """mmdet's validation metrics in the history are fractions; the tables print %."""
    return 100.0 if key.startswith("val/") and "mAP" in key else 1.0


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def mean_curve(runs: list[Run], key: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """Mean over seeds of ``key`` per epoch; whether any run diverged."""
    by_epoch: dict[float, list[float]] = defaultdict(list)
    diverged = False
    for run in runs:
        hist = [_flat(h) for h in run.history]
        ekey = _first_key(hist, EPOCH_KEYS)
        for n, h in enumerate(hist, start=1):
            if key not in h or h[key] is None:
                continue
            try:
                v = float(h[key])
            except (TypeError, ValueError):
                continue
            e = float(h[ekey]) if ekey and h.get(ekey) is not None else float(n)
            by_epoch[e].append(v * _percent_factor(key))
        diverged |= run.status == "diverged"
    xs = np.array(sorted(by_epoch))
    ys = np.array([_nanmean(by_epoch[e]) for e in xs])
    return xs, ys, diverged


def plot_curves(res: TableResult, runs_by_cell: dict[str, list[Run]], path: str | Path) -> Path | None:
    """Training loss and test metric against epochs per method (row), one panel column per run column.

    Returns None (and writes nothing) when no run has a history."""
    fig = curves_figure(res, runs_by_cell)
    if fig is None:
        return None
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


UNFINISHED_LABEL = "not finished (dashed: the curve so far, not a result)"


def curves_figure(res: TableResult, runs_by_cell: dict[str, list[Run]]) -> Any:
    """The figure of :func:`plot_curves` (the caller closes it), None when no run has a history."""
    all_hist = [_flat(h) for rs in runs_by_cell.values() for r in rs for h in r.history]
    if not all_hist:
        return None
    loss_key = _first_key(all_hist, LOSS_KEYS)
    eval_key = _first_key(all_hist, EVAL_KEYS, suffix="mAP")
    keys = [k for k in (loss_key, eval_key) if k]
    if not keys:
        return None
    cols = res.columns
    fig, axes = plt.subplots(len(keys), len(cols), figsize=(4.2 * len(cols), 3.2 * len(keys)),
                             squeeze=False)
    last_epoch = 1.0
    cmap = plt.get_cmap("tab10")
    for ci, column in enumerate(cols):
        for ki, key in enumerate(keys):
            ax = axes[ki][ci]
            for ri, row in enumerate(res.rows):
                runs = runs_by_cell.get(res.table.cell_id(column, row), [])
                if not runs:
                    continue
                finished = [r for r in runs if r.status == "finished"]
                diverged = [r for r in runs if r.status == "diverged"]
                others = [r for r in runs if r.status not in ("finished", "diverged")]
                xs, ys, _ = mean_curve(finished or diverged, key)
                if len(xs):
                    last_epoch = max(last_epoch, float(xs.max()))
                    ax.plot(xs, ys, marker="o" if len(xs) < 15 else None, ms=3, color=cmap(ri % 10),
                            label=res.table.row_label(row))
                uxs, uys, _ = mean_curve(others, key)
                if len(uxs):  # running / stopped / failed: the curve so far, dashed, ending in the status
                    last_epoch = max(last_epoch, float(uxs.max()))
                    ax.plot(uxs, uys, linestyle="--", color=cmap(ri % 10),
                            label=UNFINISHED_LABEL if len(xs) else res.table.row_label(row))
                    states = sorted({r.status for r in others})
                    if np.isfinite(uys[-1]):
                        ax.annotate(", ".join(states), (uxs[-1], uys[-1]), textcoords="offset points",
                                    xytext=(3, 3), fontsize=7, color=cmap(ri % 10))
                dxs, dys, _ = mean_curve([r for r in runs if r.status == "diverged"], key)
                finite = np.flatnonzero(np.isfinite(dys))
                if len(finite):
                    k = finite[-1]
                    if len(runs) > 1 and any(r.status != "diverged" for r in runs):
                        ax.plot(dxs[: k + 1], dys[: k + 1], linestyle=":", color=cmap(ri % 10))
                    ax.plot(dxs[k:k + 1], dys[k:k + 1], marker="x", ms=10, mew=2, color=cmap(ri % 10),
                            linestyle="none", label="diverged (last finite value)")
                elif any(r.status == "diverged" for r in runs):  # diverged before any finite value:
                    ax.scatter([dxs[0] if len(dxs) else 1.0], [0.97], marker="x", s=100, linewidths=2,
                               color=cmap(ri % 10), transform=ax.get_xaxis_transform(), clip_on=False,
                               label="diverged (at the top: no finite value)")
            if not ax.get_lines() and not ax.collections:  # collections: the markers of early divergences
                ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes,
                        color="grey")
                ax.set_yticks([])
            if key in LOSS_KEYS:
                finite = [ln.get_ydata() for ln in ax.get_lines()]
                vals = np.concatenate([np.asarray(v, float) for v in finite]) if finite else np.array([])
                vals = vals[np.isfinite(vals)]
                if len(vals) and vals.min() > 0 and vals.max() / vals.min() > 20:
                    ax.set_yscale("log")
            title = res.table.columns[column].get("label", column) if column else res.table.title
            if ki == 0:
                ax.set_title(title, fontsize=10)
            if ci == 0:
                ax.set_ylabel(key + (" (%)" if _percent_factor(key) != 1.0 else ""), fontsize=9)
            if ki == len(keys) - 1:
                ax.set_xlabel("epoch", fontsize=9)
            ax.grid(alpha=0.3)
    for row_axes in axes:  # the same epoch axis everywhere, whole epochs
        for ax in row_axes:
            ax.set_xlim(0.5, last_epoch + 0.5)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = [], []
    any_diverged = any_unfinished = False
    for row in axes:
        for ax in row:
            for line in ax.get_lines():
                any_unfinished |= line.get_linestyle() == "--"
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                if lab.startswith("diverged"):
                    any_diverged = True
                elif lab == UNFINISHED_LABEL:
                    continue
                elif lab not in labels:
                    handles.append(h)
                    labels.append(lab)
    if any_diverged:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], marker="x", mew=2, ms=8, color="black", linestyle="none"))
        labels.append("diverged (last finite value; at the top: none)")
    if any_unfinished:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], linestyle="--", color="black"))
        labels.append(UNFINISHED_LABEL)
    order = [res.table.row_label(r) for r in res.rows]
    pairs = sorted(zip(handles, labels, strict=True),
                   key=lambda hl: order.index(hl[1]) if hl[1] in order else len(order))
    handles, labels = [h for h, _ in pairs], [lab for _, lab in pairs]
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 7), fontsize=8,
                   bbox_to_anchor=(0.5, 0.995))
    fig.suptitle(f"{res.table.title}: training curves{_scale_note(res)}", fontsize=11, y=0.955)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig
