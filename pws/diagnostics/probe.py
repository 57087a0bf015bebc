"""A read-only probe of variance transmission for any ``nn.Module`` (the paper's Figures 1, 2, 6, eq. 5, 14).

Attach it to a model; it hooks every ``nn.Conv2d`` (plain, :class:`~pws.nn.PWSConv2d`,
:class:`~pws.nn.WNConv2d`, or any subclass) and records, per conv layer ``l`` and per step, one row of
numbers. Notation as in the paper: ``o`` indexes a filter (output channel), ``n = n_l`` is the fan-in
(``in_channels / groups * k_h * k_w``), ``N_l`` the number of filters; every variance is the biased
(population) variance, every ``E``/``Var`` over a filter is over its ``n`` elements.

Weights and gradients (from a hook that fires when the raw weight's gradient has been accumulated,
before any optimizer step, so it works in a plain loop and inside mmengine alike):

* ``var_ratio_mean/min/max``: ``Var[W_o - dW_o] / Var[W_o]`` over filters, ``dW = LR * grad`` -- the raw
  gradient of the loss (before clipping; no momentum, no weight decay), as in Figure 1(a). ``W`` is the
  trained parameter (``conv.weight``; for PWS the raw W of eq. 12).
* ``shift``: ``Var_o[n * E[dW_o]]``, the shift of the average gradient (Figure 1(b)). ``shift_rel`` is it
  divided by ``mean_o[n^2 E[dW_o^2]]``, a scale-free value in [0, 1] (0: every filter's update has mean 0;
  1: the updates are constants per filter that differ between filters).
* ``wvar_min``, ``wvar_mean``: ``min_o`` / ``mean_o`` of ``Var[W_o]`` of the raw weight (Figure 2(a));
  ``gamma``; ``inv_std_max = 1 / sqrt(min_o Var[W_o] + gamma)`` (Figure 2(b)). ``gamma`` is the layer's
  own for a PWS conv (after ``gamma_mode``), and ``default_gamma`` (0) for every other conv: for a plain
  conv the column is the reciprocal a weight standardization without gamma would apply.

Inputs and outputs (from forward hooks, computed at once, before an in-place ReLU can change ``Y``):

* ``x_mean``, ``x_sq``: ``E[X_l]``, ``E[X_l^2]`` over the whole input batch; per input sample ``x``
  (Figure 6): ``x_mean_min/max`` (range of ``E(x)``), ``x_mean2_min/max`` (range of ``E(x)^2``),
  ``x_sq_min/max`` (range of ``E(x^2)``), ``x_ratio_min/max`` (range of ``E(x)^2 / E(x^2)``).
* ``var_y``: ``Var[Y_l]`` measured on the conv's output (before any norm or activation; the conv bias
  included). ``var_y_within = mean_o Var[Y_o]``, ``var_y_between = Var_o[E[Y_o]]`` and
  ``var_y_eq14 = var_y_within + var_y_between`` (the appendix's eq. 14, an identity).
* eq. (5), with ``K_o`` the kernel the layer convolves with at that forward (``pws.nn.fold.kernel_of``:
  ``alpha_o W_hat_o`` for PWS, ``g_o V_o/||V_o||`` for WN, the weight otherwise) and ``b_o`` its bias::

      transmit  = mean_o( n Var[K_o] / 2 )
      mean_term = Var_o[ n E[K_o] E[X_l] + b_o ]        (the paper ignores b; b = 0 at initialization)
      var_y_pred      = 2 E[X_l^2] * transmit + mean_term
      var_y_pred_prev = var_y_prev * transmit + mean_term

  ``var_y_pred`` plugs in ``Var[Y_{l-1}] := 2 E[X_l^2]`` measured on this layer's input -- the paper's
  ReLU relation (eq. 2) read backwards, defined wherever the layer has an input (also after max-pools,
  which the relation does not describe). ``var_y_prev`` is the measured ``Var[Y]`` of the conv that ran
  just before this one in the same forward (NaN for the first); ``var_y_pred_prev`` is eq. (5) with it,
  literally. Both stand next to ``var_y``. ``k_shift = Var_o[n E[K_o]]`` (0 for PWS).
  ``var_y_pred_iid = mean_o n (Var[K_o] + E[K_o]^2) Var[X_l] + mean_term`` is what the same
  decomposition gives for inputs with independent elements and fixed weights (our addition, not the
  paper's: eq. (4)'s ``n Var[W_o] E[X^2]`` is He et al.'s variance over random weights, which already
  contains the spread of the filter means, so eq. (5) counts ``mean_term`` twice at initialization).

The probe only reads: hooks return ``None``, run under ``torch.no_grad()`` on detached tensors, never draw
random numbers and never touch ``.grad`` or a parameter; the same seed gives bit-identical training with
and without it (tested). Cost: O(activations) per conv forward (a few reductions over ``X`` and ``Y``),
O(weights) per conv backward, plus one extra standardization per PWS/WN conv forward; measured numbers
are in the README. Gradients under AMP include the loss scale; under DDP the hook sees the local
(pre-all-reduce) gradient.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pws.nn.fold import kernel_of
from pws.nn.methods import StandardizedConv, conv_kind

# Column order of a probe row (``VarianceProbe.rows``, ``to_csv``).
ROW_COLUMNS: tuple[str, ...] = (
    "step",
    "layer",
    "name",
    "kind",
    "n",
    "filters",
    "lr",
    "var_ratio_mean",
    "var_ratio_min",
    "var_ratio_max",
    "shift",
    "shift_rel",
    "wvar_min",
    "wvar_mean",
    "gamma",
    "inv_std_max",
    "x_mean",
    "x_sq",
    "x_mean_min",
    "x_mean_max",
    "x_mean2_min",
    "x_mean2_max",
    "x_sq_min",
    "x_sq_max",
    "x_ratio_min",
    "x_ratio_max",
    "samples",
    "var_y",
    "var_y_within",
    "var_y_between",
    "var_y_eq14",
    "transmit",
    "mean_term",
    "k_shift",
    "var_y_prev",
    "var_y_pred",
    "var_y_pred_prev",
    "var_y_pred_iid",
)
NAN = float("nan")


def layer_gamma(conv: nn.Module, default: float = 0.0) -> float:
    """The gamma inside ``sqrt(Var[W_o] + gamma)`` (eq. 12): asked of a conv that standardizes its kernel
    (:class:`~pws.nn.methods.StandardizedConv`: PWS, after gamma_mode), else ``default``."""
    if isinstance(conv, StandardizedConv):
        return float(conv.standardization_gamma())
    return float(default)


def _values(names: Sequence[str], tensors: Sequence[Tensor]) -> dict[str, float]:
    """Scalar tensors as Python floats, read in one transfer (one device synchronization)."""
    return dict(zip(names, torch.stack([t.double() for t in tensors]).tolist(), strict=True))


def _pvar(t: Tensor) -> Tensor:
    """Biased variance of a 1-d tensor (0 for one element)."""
    return t.var(correction=0) if t.numel() > 1 else t.new_zeros(())


@torch.no_grad()
def weight_grad_stats(weight: Tensor, grad: Tensor, lr: float, gamma: float) -> dict[str, float]:
    """Figure 1 and 2 numbers for one conv from its raw weight and gradient.

    Reductions run in the weight's dtype (per-filter Welford variances, cascade sums: float32 keeps ~7
    digits, enough for ratios near 1 and for PWS's zero shift, see the tests); the per-filter results are
    combined in float64. One temporary of the weight's size (``W - dW``).
    """
    w = weight.detach().flatten(1)
    g = grad.detach().flatten(1)
    lr = float(lr)
    n = w.shape[1]
    var_w = torch.var(w, dim=1, correction=0).double()
    var_diff = torch.var(torch.add(w, g, alpha=-lr), dim=1, correction=0).double()
    ratio = var_diff / var_w
    shift = _pvar(n * lr * g.mean(dim=1).double())
    scale = ((n * lr) ** 2 * torch.linalg.vector_norm(g, dim=1).double().pow(2) / n).mean()
    out = _values(
        ("var_ratio_mean", "var_ratio_min", "var_ratio_max", "shift", "scale", "wvar_min", "wvar_mean"),
        (ratio.mean(), ratio.min(), ratio.max(), shift, scale, var_w.min(), var_w.mean()),
    )
    scale = out.pop("scale")
    out["shift_rel"] = out["shift"] / scale if scale > 0 else NAN
    out["gamma"] = float(gamma)
    denominator = out["wvar_min"] + gamma
    out["inv_std_max"] = 1.0 / math.sqrt(denominator) if denominator > 0 else math.inf
    return out


@torch.no_grad()
def input_stats(x: Tensor) -> dict[str, float]:
    """Figure 6 numbers of a conv input ``(N, C, H, W)``: E(x), E(x^2) per sample and over the batch."""
    flat = x.detach().flatten(1)
    m = flat.mean(dim=1).double()
    sq = torch.linalg.vector_norm(flat, dim=1).double().pow(2) / flat.shape[1]
    m2 = m * m
    ratio = m2 / sq
    out = _values(
        ("x_mean", "x_sq", "x_mean_min", "x_mean_max", "x_mean2_min", "x_mean2_max", "x_sq_min", "x_sq_max",
         "x_ratio_min", "x_ratio_max"),
        (m.mean(), sq.mean(), m.min(), m.max(), m2.min(), m2.max(), sq.min(), sq.max(), ratio.min(),
         ratio.max()),
    )  # fmt: skip
    out["samples"] = int(flat.shape[0])
    return out


@torch.no_grad()
def output_stats(y: Tensor) -> dict[str, float]:
    """``Var[Y_l]`` measured and its eq. (14) decomposition over output channels (dim 1)."""
    return _values(*_output_terms(y))


def _output_terms(y: Tensor) -> tuple[tuple[str, ...], tuple[Tensor, ...]]:
    y = y.detach()
    dims = [d for d in range(y.dim()) if d != 1]
    var_c, mean_c = torch.var_mean(y, dim=dims, correction=0)
    within = var_c.double().mean()
    between = _pvar(mean_c.double())
    return (
        ("var_y", "var_y_within", "var_y_between", "var_y_eq14"),
        (torch.var(y, correction=0), within, between, within + between),
    )


def _eq5_terms(
    kernel: Tensor, bias: Tensor | None, x_mean: float
) -> tuple[tuple[str, ...], tuple[Tensor, ...]]:
    """Per-layer pieces of eq. (5) from the kernel the conv uses and ``E[X_l]`` (see the module docs)."""
    k = kernel.detach().flatten(1)
    n = k.shape[1]
    var_k, mean_k = torch.var_mean(k, dim=1, correction=0)
    var_k, mean_k = var_k.double(), mean_k.double()
    means = n * mean_k * x_mean
    if bias is not None:
        means = means + bias.detach().double()
    return (
        ("transmit", "mean_term", "k_shift", "iid_within"),
        ((0.5 * n * var_k).mean(), _pvar(means), _pvar(n * mean_k), (n * (var_k + mean_k * mean_k)).mean()),
    )


@torch.no_grad()
def forward_stats(module: nn.Conv2d, output: Tensor, x_mean: float) -> dict[str, float]:
    """``output_stats`` and the eq. (5) pieces of one conv forward, read in one transfer."""
    names_y, values_y = _output_terms(output)
    names_k, values_k = _eq5_terms(kernel_of(module), module.bias, x_mean)
    return _values((*names_y, *names_k), (*values_y, *values_k))


class VarianceProbe:
    """Record variance-transmission numbers of every conv of ``model`` at every step (see module docs).

    >>> probe = VarianceProbe(model, lr=1e-2)           # attaches hooks
    >>> loss = criterion(model(x), t); loss.backward()
    >>> rows = probe.step()                             # one dict per conv layer; also kept in probe.rows
    >>> optimizer.step()                                # (or not: the paper's Figure 1 protocol)
    >>> probe.detach(); probe.to_csv("probe.csv")

    Arguments:
        model: any module; every ``nn.Conv2d`` inside it (in ``named_modules`` order) is a layer,
            numbered from 1.
        lr: the learning rate in ``dW = LR * grad`` (may be changed between steps: ``probe.lr = ...``).
        layers: restrict to these layers (1-based indices or module names); default all.
        activations: record the forward numbers (inputs, outputs, eq. 5); False records only the
            weight/gradient numbers (cheaper: nothing per activation).
        default_gamma: the gamma of ``inv_std_max`` for convs that are not PWS.
        training_only: ignore forwards made in eval mode (validation passes).
        keep_rows: keep every row in ``self.rows`` (False: ``step()`` only returns them).
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float,
        *,
        layers: Iterable[int | str] | None = None,
        activations: bool = True,
        default_gamma: float = 0.0,
        training_only: bool = True,
        keep_rows: bool = True,
    ) -> None:
        self.model = model
        self.lr = float(lr)
        self.activations = activations
        self.default_gamma = float(default_gamma)
        self.training_only = training_only
        self.keep_rows = keep_rows
        self.enabled = True
        self.rows: list[dict[str, Any]] = []
        self.steps_recorded = 0
        convs = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
        wanted = None if layers is None else set(layers)
        self.layers: list[tuple[int, str, nn.Conv2d]] = [
            (i, name, m)
            for i, (name, m) in enumerate(convs, start=1)
            if wanted is None or i in wanted or name in wanted
        ]
        if wanted is not None:
            found = {i for i, _, _ in self.layers} | {name for _, name, _ in self.layers}
            missing = wanted - found
            if missing:
                raise ValueError(
                    f"layers {sorted(map(str, missing))} not found; the model has {len(convs)} convs: "
                    + ", ".join(f"{i}={n}" for i, (n, _) in enumerate(convs, start=1))
                )
        if not self.layers:
            raise ValueError("the model has no nn.Conv2d to probe")
        self._handles: list[Any] = []
        self._fwd: dict[int, dict[str, Any]] = {}
        self._bwd: dict[int, dict[str, float]] = {}
        self._last_var_y: float = NAN
        self.attach()

    # ----------------------------------------------------------------- hooks
    def attach(self) -> VarianceProbe:
        """Register the hooks (done by the constructor; after ``detach`` it re-attaches)."""
        if self._handles:
            return self
        if self.activations:
            self._handles.append(self.model.register_forward_pre_hook(self._on_model_forward))
        for index, _name, conv in self.layers:
            if self.activations:
                self._handles.append(conv.register_forward_pre_hook(self._make_pre_hook(index)))
                self._handles.append(conv.register_forward_hook(self._make_fwd_hook(index)))
            if conv.weight.requires_grad:
                self._handles.append(
                    conv.weight.register_post_accumulate_grad_hook(self._make_grad_hook(index, conv))
                )
        return self

    def detach(self) -> None:
        """Remove every hook; the model is as it was before the probe."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __enter__(self) -> VarianceProbe:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def _recording(self, module: nn.Module) -> bool:
        return self.enabled and (module.training or not self.training_only)

    def _on_model_forward(self, module: nn.Module, args: Any) -> None:
        if self._recording(module):
            self._last_var_y = NAN

    def _make_pre_hook(self, index: int):
        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            if not self._recording(module) or not args or not torch.is_tensor(args[0]):
                return
            with torch.no_grad():
                self._fwd[index] = input_stats(args[0])
                self._fwd[index]["_x_var"] = max(
                    self._fwd[index]["x_sq"] - self._fwd[index]["x_mean"] ** 2, 0.0
                )

        return hook

    def _make_fwd_hook(self, index: int):
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if not self._recording(module) or index not in self._fwd or not torch.is_tensor(output):
                return
            with torch.no_grad():
                rec = self._fwd[index]
                rec.update(forward_stats(module, output, rec["x_mean"]))
                iid_within = rec.pop("iid_within") * rec.pop("_x_var")
                rec["var_y_prev"] = self._last_var_y
                rec["var_y_pred"] = 2.0 * rec["x_sq"] * rec["transmit"] + rec["mean_term"]
                rec["var_y_pred_prev"] = rec["var_y_prev"] * rec["transmit"] + rec["mean_term"]
                rec["var_y_pred_iid"] = iid_within + rec["mean_term"]
                rec["_complete"] = True
                self._last_var_y = rec["var_y"]

        return hook

    def _make_grad_hook(self, index: int, conv: nn.Conv2d):
        def hook(param: Tensor) -> None:
            if not self.enabled or param.grad is None:
                return
            self._bwd[index] = weight_grad_stats(
                param, param.grad, self.lr, layer_gamma(conv, self.default_gamma)
            )

        return hook

    # ----------------------------------------------------------------- rows
    def step(self, step: int | None = None) -> list[dict[str, Any]]:
        """Close the current step: one row per probed layer from the hooks fired since the last call.

        Call it after ``backward()`` (before or after the optimizer step: the gradient numbers were taken
        when the gradient was accumulated). Layers without a forward or gradient since the last call get
        NaN in those columns. Returns the rows (and keeps them in ``self.rows`` if ``keep_rows``).
        """
        if step is None:
            step = self.steps_recorded
        rows = []
        for index, name, conv in self.layers:
            row: dict[str, Any] = dict.fromkeys(ROW_COLUMNS, NAN)
            row.update(
                step=step,
                layer=index,
                name=name,
                kind=conv_kind(conv),
                n=conv.weight[0].numel(),
                filters=conv.weight.shape[0],
                lr=self.lr,
            )
            fwd = self._fwd.get(index, {})
            if fwd.get("_complete"):
                row.update({k: v for k, v in fwd.items() if not k.startswith("_")})
            row.update(self._bwd.get(index, {}))
            rows.append(row)
        self._fwd.clear()
        self._bwd.clear()
        self.steps_recorded += 1
        if self.keep_rows:
            self.rows.extend(rows)
        return rows

    def to_csv(
        self,
        path: str | os.PathLike[str],
        rows: Sequence[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Path:
        """Write rows (default: all kept rows) as CSV: ``extra`` constant columns, then ``ROW_COLUMNS``."""
        return write_rows(path, self.rows if rows is None else rows, extra=extra)


def write_rows(
    path: str | os.PathLike[str],
    rows: Sequence[dict[str, Any]],
    *,
    extra: dict[str, Any] | None = None,
    columns: Sequence[str] = ROW_COLUMNS,
    append: bool = False,
) -> Path:
    """Write probe rows to CSV (``extra``: constant leading columns such as the method)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = extra or {}
    fields = [*extra, *columns]
    new_file = not (append and path.exists() and path.stat().st_size > 0)
    with path.open("a" if append else "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new_file:
            writer.writeheader()
        for row in rows:
            writer.writerow({**extra, **row})
    return path
