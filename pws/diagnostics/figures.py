"""Figures 1, 2 and 6 of the paper from probe rows: the CSV tables and matplotlib PNGs.

CSV files (``results/<scale>/``):

``figure1.csv`` -- one row per (method, layer), aggregated over the measured batches (the weights never
change, see :mod:`pws.diagnostics.measurements`): ``method`` (none = standard, bn, pws), ``layer`` (1..13,
conv1_1 .. conv5_3), ``name``, ``n`` (fan-in), ``filters``, ``steps`` (batches), ``images``, ``lr``;
``var_ratio_mean`` (mean over batches of the mean over filters of ``Var[W_o - dW_o] / Var[W_o]``),
``var_ratio_min`` / ``var_ratio_max`` (min / max over batches and filters); ``shift`` (mean over batches of
``Var_o[n E[dW_o]]``), ``shift_min`` / ``shift_max`` (over batches), ``shift_rel`` (mean of the scale-free
shift, see the probe); eq. (5)/(14) columns, each the mean over batches: ``var_y`` (measured ``Var[Y_l]``),
``var_y_eq14``, ``var_y_within``, ``var_y_between``, ``var_y_pred`` (eq. 5, ``Var[Y_{l-1}] := 2 E[X_l^2]``),
``var_y_pred_prev`` (eq. 5 with the measured ``Var[Y_{l-1}]`` of the previous conv), ``var_y_pred_iid``,
``transmit``, ``mean_term``, ``k_shift``, ``x_mean``, ``x_sq``.

``figure6.csv`` -- one row per (method, layer): ``input_from`` (image, relu or maxpool), ``samples`` (input
images seen), and the range over every input sample ``x`` of every batch of ``E(x)`` (``x_mean_min``,
``x_mean_max``), ``E(x)^2`` (``x_mean2_min``, ``x_mean2_max``), ``E(x^2)`` (``x_sq_min``, ``x_sq_max``) and
``E(x)^2 / E(x^2)`` (``x_ratio_min``, ``x_ratio_max``); ``x_mean``, ``x_sq`` are batch-level means.

``figure2.csv`` -- one row per (gamma, training step), read back from the ``variance_probe.csv`` of each
gamma's classification run (``figure2_runs/gamma<g>/``): ``gamma``, ``step`` (the run's 0-based iteration),
``epoch`` (``step / steps per epoch``), ``layer``, ``name``, ``lr`` (the optimizer's LR at that step),
``wvar_min`` (``min_o Var[W_o]`` of the raw PWS weight), ``wvar_mean``, ``inv_std_max``
(``1 / sqrt(min_o Var[W_o] + gamma)``), ``loss`` (training loss of that step's batch), ``var_ratio_mean``,
``shift``.

``figure1_steps.csv`` keeps every probe row of the Figure 1/6 measurement (with ``method``); Figure 6 reuses
it when its settings match (``figure1_6.json``).
"""

from __future__ import annotations

import csv
import math
import os
import textwrap
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

FIG1_COLUMNS: tuple[str, ...] = (
    "method",
    "layer",
    "name",
    "n",
    "filters",
    "steps",
    "images",
    "lr",
    "var_ratio_mean",
    "var_ratio_min",
    "var_ratio_max",
    "shift",
    "shift_min",
    "shift_max",
    "shift_rel",
    "var_y",
    "var_y_eq14",
    "var_y_within",
    "var_y_between",
    "var_y_pred",
    "var_y_pred_prev",
    "var_y_pred_iid",
    "transmit",
    "mean_term",
    "k_shift",
    "x_mean",
    "x_sq",
)
FIG6_COLUMNS: tuple[str, ...] = (
    "method",
    "layer",
    "name",
    "input_from",
    "samples",
    "x_mean_min",
    "x_mean_max",
    "x_mean2_min",
    "x_mean2_max",
    "x_sq_min",
    "x_sq_max",
    "x_ratio_min",
    "x_ratio_max",
    "x_mean",
    "x_sq",
)
FIG2_COLUMNS: tuple[str, ...] = (
    "gamma",
    "step",
    "epoch",
    "layer",
    "name",
    "lr",
    "wvar_min",
    "wvar_mean",
    "inv_std_max",
    "loss",
    "var_ratio_mean",
    "shift",
)
_MEAN = (
    "var_ratio_mean",
    "shift",
    "shift_rel",
    "var_y",
    "var_y_eq14",
    "var_y_within",
    "var_y_between",
    "var_y_pred",
    "var_y_pred_prev",
    "var_y_pred_iid",
    "transmit",
    "mean_term",
    "k_shift",
    "x_mean",
    "x_sq",
)
_MIN = {
    "var_ratio_min": "var_ratio_min",
    "shift_min": "shift",
    "x_mean_min": "x_mean_min",
    "x_mean2_min": "x_mean2_min",
    "x_sq_min": "x_sq_min",
    "x_ratio_min": "x_ratio_min",
}
_MAX = {"var_ratio_max": "var_ratio_max", "shift_max": "shift", "x_mean_max": "x_mean_max",
        "x_mean2_max": "x_mean2_max", "x_sq_max": "x_sq_max", "x_ratio_max": "x_ratio_max"}  # fmt: skip
COLORS = {"none": "#d62728", "bn": "#1f77b4", "pws": "#2ca02c"}
LABELS = {"none": "standard", "bn": "BN", "pws": "PWS"}


# ----------------------------------------------------------------------------------------------- CSV
def read_csv(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a CSV written by ``probe.write_rows``, numbers converted back (ints stay ints)."""
    out = []
    with Path(path).open(newline="") as f:
        for row in csv.DictReader(f):
            out.append({k: _parse(v) for k, v in row.items()})
    return out


def _parse(v: str) -> Any:
    try:
        return int(v)
    except ValueError:
        pass
    try:
        return float(v)
    except ValueError:
        return v


def aggregate_layers(
    steps: Sequence[dict[str, Any]], input_from: dict[int, str] | None = None
) -> list[dict[str, Any]]:
    """One row per (method, layer) from per-step probe rows (means, and min/max over steps)."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in steps:
        groups[(row["method"], int(row["layer"]))].append(row)
    methods = list(dict.fromkeys(r["method"] for r in steps))
    out = []
    for method in methods:
        for layer in sorted(lay for m, lay in groups if m == method):
            rows = groups[(method, layer)]
            agg: dict[str, Any] = {k: rows[0][k] for k in ("method", "layer", "name", "n", "filters", "lr")}
            agg["steps"] = len(rows)
            agg["images"] = sum(int(r.get("images", r.get("samples", 0)) or 0) for r in rows)
            agg["samples"] = sum(int(r.get("samples", 0) or 0) for r in rows if _finite(r.get("samples")))
            for k in _MEAN:
                agg[k] = _nanmean([r[k] for r in rows])
            for k, src in _MIN.items():
                agg[k] = _nanreduce(np.nanmin, [r[src] for r in rows])
            for k, src in _MAX.items():
                agg[k] = _nanreduce(np.nanmax, [r[src] for r in rows])
            agg["input_from"] = (input_from or {}).get(layer, "")
            out.append(agg)
    return out


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _nanmean(values: Sequence[Any]) -> float:
    arr = np.array([float(v) for v in values], dtype=np.float64)
    return float(np.nanmean(arr)) if np.isfinite(arr).any() else float("nan")


def _nanreduce(fn: Any, values: Sequence[Any]) -> float:
    arr = np.array([float(v) for v in values], dtype=np.float64)
    return float(fn(arr)) if not np.isnan(arr).all() else float("nan")


# ------------------------------------------------------------------------------------------- drawing
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _by_method(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[r["method"]].append(r)
    for v in out.values():
        v.sort(key=lambda r: r["layer"])
    return out


def _shade_pool_inputs(ax: Any, rows: Sequence[dict[str, Any]]) -> None:
    pools = sorted({r["layer"] for r in rows if r.get("input_from") == "maxpool"})
    for layer in pools:
        ax.axvspan(layer - 0.5, layer + 0.5, color="0.92", zorder=0, lw=0)


def _layer_axis(ax: Any, layers: Sequence[int]) -> None:
    ax.set_xticks(list(layers))
    ax.set_xlim(min(layers) - 0.6, max(layers) + 0.6)
    ax.set_xlabel("conv layer l (1 = conv1_1 ... 13 = conv5_3)")


def _finish(
    fig: Any,
    title: str,
    path: str | os.PathLike[str],
    *,
    handles: Sequence[Any] = (),
    labels: Sequence[str] = (),
    note: str = "",
) -> None:
    """Wrapped title on top, a shared legend and a note below the panels (constrained layout); save."""
    fig.suptitle("\n".join(textwrap.fill(t, 165) for t in title.split("\n")), fontsize=10.5)
    if handles:
        legend = fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 6), fontsize=9,
                            frameon=False, title=note or None, title_fontsize=8.5)  # fmt: skip
        if note:
            legend.get_title().set_color("0.3")
    elif note:
        fig.supxlabel(note, fontsize=8.5, color="0.3")
    fig.savefig(Path(path), dpi=120)


def plot_figure1(rows: Sequence[dict[str, Any]], path: str | os.PathLike[str], title: str) -> Path:
    """(a) Var[W_o - dW_o]/Var[W_o] (mean over filters, min-max band); (b) the shift; (c) eq. (5) check."""
    plt = _plt()
    by = _by_method(rows)
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.4), layout="constrained")
    ax = axes[0]
    for method, rs in by.items():
        x = [r["layer"] for r in rs]
        ax.plot(
            x,
            [r["var_ratio_mean"] for r in rs],
            "o-",
            color=COLORS.get(method),
            label=LABELS.get(method, method),
        )
        ax.fill_between(x, [r["var_ratio_min"] for r in rs], [r["var_ratio_max"] for r in rs],
                        color=COLORS.get(method), alpha=0.15, lw=0)  # fmt: skip
    ax.axhline(1.0, color="0.4", lw=0.8, ls=":")
    spread = [r[k] for r in rows for k in ("var_ratio_min", "var_ratio_max") if _finite(r[k]) and r[k] > 0]
    if spread and max(spread) / min(spread) > 10:
        ax.set_yscale("log")
    else:
        ax.ticklabel_format(axis="y", useOffset=False)
    ax.set_ylabel(r"$\mathrm{Var}[W_o-\Delta W_o]\,/\,\mathrm{Var}[W_o]$")
    ax.set_title(
        "(a) change of each filter's variance by one step\n(line: mean over filters; band: min to max)",
        fontsize=10,
    )
    ax.legend(fontsize=9)

    ax = axes[1]
    floor = None
    for method, rs in by.items():
        vals = [r["shift"] for r in rs]
        positive = [v for v in vals if v > 0]
        if method == "pws" and positive:
            floor = max(positive)
        ax.plot([r["layer"] for r in rs], [max(v, 1e-30) for v in vals], "o-", color=COLORS.get(method),
                label=LABELS.get(method, method))  # fmt: skip
    ax.set_yscale("log")
    ax.set_ylabel(r"$\mathrm{Var}_o[\,n_l\,\mathrm{E}[\Delta W_o]\,]$")
    ax.set_title("(b) shift of the average gradient (log scale, not divided by 10)", fontsize=10)
    if floor is not None:
        ax.text(0.02, 0.03, f"PWS: zero up to float32 rounding (eq. 13), max {floor:.1g}",
                transform=ax.transAxes, fontsize=8.5, color=COLORS["pws"])  # fmt: skip
    ax.legend(fontsize=9)

    ax = axes[2]
    for method, rs in by.items():
        x = [r["layer"] for r in rs]
        c = COLORS.get(method)
        name = LABELS.get(method, method)
        ax.plot(x, [r["var_y"] for r in rs], "o-", color=c, label=f"{name}: measured")
        ax.plot(x, [r["var_y_pred"] for r in rs], "x--", color=c, label=f"{name}: eq. (5)")
    ax.set_yscale("log")
    ax.set_ylabel(r"$\mathrm{Var}[Y_l]$ (conv output, before any norm)")
    ax.set_title("(c) not in the paper: Var[Y_l] measured (o) and by eq. (5) (x),\n"
                 r"with $\mathrm{Var}[Y_{l-1}] := 2\,\mathrm{E}[X_l^2]$ of the layer's input",
                 fontsize=10)  # fmt: skip
    ax.legend(fontsize=8, ncol=1)
    for ax in axes:
        _layer_axis(ax, sorted({r["layer"] for r in rows}))
        ax.grid(alpha=0.3, which="major")
    _finish(fig, title, path)
    plt.close(fig)
    return Path(path)


def plot_figure6(rows: Sequence[dict[str, Any]], path: str | os.PathLike[str], title: str) -> Path:
    """(a) range of E(x)^2 over input samples per layer; (b) range of E(x)^2 / E(x^2); offset per method."""
    plt = _plt()
    by = _by_method(rows)
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.4), layout="constrained")
    width = 0.22
    offsets = {m: (i - (len(by) - 1) / 2) * width for i, m in enumerate(by)}
    panels = (("x_mean2_min", "x_mean2_max", r"range of $\mathrm{E}^2(x)$ over input samples $x$", "log",
               "(a) range of $E^2[X_l]$ (per input sample x: the square of its mean)"),
              ("x_ratio_min", "x_ratio_max", r"range of $\mathrm{E}^2(x)\,/\,\mathrm{E}(x^2)$", "linear",
               "(b) range of $E^2[X_l] / E[X_l^2]$"))  # fmt: skip
    for ax, (lo, hi, ylabel, scale, ttl) in zip(axes, panels, strict=True):
        _shade_pool_inputs(ax, rows)
        for method, rs in by.items():
            x = np.array([r["layer"] for r in rs], dtype=float) + offsets[method]
            lows = np.array([r[lo] for r in rs], dtype=float)
            highs = np.array([r[hi] for r in rs], dtype=float)
            if scale == "log":
                lows = np.maximum(lows, 1e-12)
            ax.vlines(x, lows, highs, color=COLORS.get(method), lw=5, alpha=0.75,
                      label=LABELS.get(method, method))  # fmt: skip
        ax.set_yscale(scale)
        ax.set_ylabel(ylabel)
        ax.set_title(ttl, fontsize=10)
        _layer_axis(ax, sorted({r["layer"] for r in rows}))
        ax.grid(alpha=0.3, axis="y")
    axes[1].set_ylim(0, 1.02)
    guide = axes[1].axhline(1 / math.pi, color="0.3", lw=1.0, ls=":")
    handles, labels = axes[0].get_legend_handles_labels()
    handles, labels = [*handles, guide], [*labels, r"$1/\pi$ = E$^2$/E(x$^2$) of a ReLU'd zero-mean Gaussian"]
    pooled = sorted({r["layer"] for r in rows if r.get("input_from") == "maxpool"})
    note = (
        f"bars: min to max over every input sample; grey columns: input from a max-pool (layers "
        f"{', '.join(map(str, pooled))}); layer 1's input is the normalized image"
    )
    _finish(fig, title, path, handles=handles, labels=labels, note=note)
    plt.close(fig)
    return Path(path)


def plot_figure2(rows: Sequence[dict[str, Any]], path: str | os.PathLike[str], title: str) -> Path:
    """(a) min_o Var[W_o] over steps per gamma; (b) 1/sqrt(min_o Var[W_o] + gamma); (c) training loss.

    A run whose loss stopped being finite ends with an x at its last finite point ("diverged at step N").
    """
    plt = _plt()
    by: dict[float, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by[float(r["gamma"])].append(r)
    cmap = plt.get_cmap("viridis")
    gammas = sorted(by)
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2), layout="constrained")
    keys = ("wvar_min", "inv_std_max", "loss")
    for i, gamma in enumerate(gammas):
        rs = sorted(by[gamma], key=lambda r: r["step"])
        color = cmap(i / max(1, len(gammas) - 1) * 0.9)
        diverged = not _finite(rs[-1]["loss"])
        label = rf"$\gamma$ = {gamma:g}  ($1/\sqrt{{\gamma}}$ = {1 / math.sqrt(gamma):.3g})"
        if diverged:
            label += f", diverged at step {rs[-1]['step']}"
        for ax, key in zip(axes, keys, strict=True):
            pts = [(r["step"], r[key]) for r in rs if _finite(r[key]) and _finite(r["loss"])]
            if not pts:
                continue
            ax.plot(*zip(*pts, strict=True), color=color, lw=1.2, label=label)
            if diverged:
                ax.plot(*pts[-1], "x", color=color, ms=9, mew=2)
    axes[0].set_ylabel(r"$\min_o \mathrm{Var}[W_o]$ (raw weight)")
    axes[0].set_title("(a) minimum over the filters of Var[W_o], third conv layer", fontsize=10)
    axes[1].set_ylabel(r"$1/\sqrt{\min_o \mathrm{Var}[W_o] + \gamma}$")
    axes[1].set_title(r"(b) the largest reciprocal PWS applies in that layer (bounded by $1/\sqrt{\gamma}$)",
                      fontsize=10)  # fmt: skip
    axes[2].set_ylabel("training loss (cross-entropy of the step's batch)")
    axes[2].set_yscale("log")
    axes[2].set_title("(c) not in the paper: training loss (x: last finite value)", fontsize=10)
    for ax in axes:
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    _finish(fig, title, path, handles=handles, labels=labels)
    plt.close(fig)
    return Path(path)
