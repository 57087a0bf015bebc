"""One standardization for the whole network per step: every PWS kernel of eq. (12) in one segmented op.

:class:`~pws.nn.PWSConv2d` standardizes its own kernel at every forward: a handful of small ops per layer,
forward and backward. On a GPU their cost is the launches (150-280 us per layer), not the arithmetic, and it
grows with the depth of the network. Here the kernels of all the PWS layers of a network are computed
together: the raw weights of every layer are concatenated into one flat vector ``x`` (``N`` weights in ``F``
filters of lengths ``n_f``), and eq. (12) is applied to every filter at once with *segmented* reductions (one
segment per filter, ``torch.segment_reduce``) and per-filter values broadcast back by one gather each
(``index_select`` with a precomputed filter index)::

    mean_f = sum_{i in f} x_i / n_f                 (segment sum, accumulated in float64)
    var_f  = sum_{i in f} (x_i - mean_f)^2 / n_f    (two passes: biased variance, as eq. 12)
    k_f    = alpha_f * s_f / sqrt(var_f + gamma_f)  (s_f = sqrt(2 / n_f) or 1; gamma_f after gamma_mode)
    W_hat_i = k_f * (x_i - mean_f)

and backward (``g`` the gradient of ``W_hat``, ``xc = x - mean``, BN's backward per filter)::

    dx_i     = k_f * g_i - k_f * S_f(g) / n_f - k_f * rstd_f^2 * S_f(g * xc) / n_f * xc_i
    dalpha_f = s_f * rstd_f * S_f(g * xc)

so ``sum_{i in f} dx_i = 0`` for every filter (eq. 13) as in the per-layer path. The number of ops per step
is the same for 4 layers as for 400: one concatenation of the weights, one of the alphas, a fixed number of
segmented ops over ``x``, then views (``split``/``view``) that hand each layer its kernel.

Use::

    model = pws.nn.fuse_standardization(model)   # in place; state_dict, fold, convert unchanged
    ...
    pws.nn.unfuse_standardization(model)         # back to the per-layer path

When the kernels are computed
-----------------------------
``fuse_standardization`` gives each PWS layer an ``effective_weight`` of its own (an instance attribute in
front of the method; the class, the parameters and the state_dict keys stay what they were) that asks the
network's :class:`FusedStandardization` for its kernel. The first layer to ask computes all of them and keeps
them; the others are served from there. They are computed again when a layer's weight or alpha changed (the
tensor, its storage or its version counter: an optimizer step, ``load_state_dict``, ``model.to``), when
``gamma``, ``gamma_mode`` or ``fan_in_scale`` changed, when gradients are needed and the kept kernels were
computed without them (or in inference mode), and after every backward pass through them. So training
computes them once per step (forward), evaluation once until the weights change, and a gradient-accumulation
loop once per micro-batch, like the per-layer path. Writes that bypass the version counter (``w.data.add_``)
are not seen by an evaluation loop: call :meth:`FusedStandardization.invalidate` after them.

Memory: the flat kernels (``N`` values) and their flat input (``N``) live until the next computation, plus a
filter index (``N`` int32), and on the CPU three work buffers (two of ``N`` values, one of ``N`` float64),
kept because fresh buffers of this size go back to the OS and are page-faulted in again at every step.

Speed: the point is the GPU, where the per-layer cost is launches. On a CPU the per-layer path is faster:
its dense per-layer reductions are vectorized, while the segmented sums and gathers over ``N`` values are
not, and each flat buffer is a fresh mapping; measured on 2 cores (``bench/bench_fused.py``), the fused
standardization of VGG-16's 14.7M weights took 7-18x the per-layer time (185-280 ms against 16-26 ms).

The backward pass reads its tensors from the autograd context rather than ``save_for_backward``, so that
kernels shared by several forwards can be backpropagated once per forward (``l1.backward();
l2.backward()``); saved-tensor hooks do not see them.

Limits: eager mode (under ``torch.compile`` the per-layer path is compiled into few kernels anyway); one
thread per network (``nn.DataParallel`` replicas and shallow copies share their original's fusion: use DDP);
``alpha_init="data"`` works (its first step recomputes the kernels after each layer's alpha is set).
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from pws.nn.pws_conv import PWSConv2d

ACC = torch.float64  # the per-filter sums and statistics


class SegmentPlan:
    """The segments of the PWS layers of one (device, dtype): per-filter constants and the filter index.

    Built from the layers' geometry and options; holds no parameter. ``key`` says what it was built from.
    """

    def __init__(self, layers: list[PWSConv2d], device: torch.device, dtype: torch.dtype) -> None:
        self.device, self.dtype = device, dtype
        self.key = plan_key(layers)
        out_channels = [layer.out_channels for layer in layers]
        fan_ins = [layer.fan_in for layer in layers]
        self.shapes = [tuple(layer.weight.shape) for layer in layers]
        self.numels = [o * n for o, n in zip(out_channels, fan_ins, strict=True)]
        self.numel = sum(self.numels)
        self.filters = sum(out_channels)
        per_layer = torch.tensor(out_channels)
        lengths = torch.repeat_interleave(torch.tensor(fan_ins), per_layer)
        self.offsets = torch.cat([lengths.new_zeros(1), lengths.cumsum(0)]).to(device)  # segment bounds
        self.n = lengths.to(device, ACC)
        scales = [math.sqrt(2.0 / n) if layer.fan_in_scale else 1.0 for layer, n in zip(layers, fan_ins,
                                                                                           strict=True)]
        gammas = [layer.standardization_gamma() for layer in layers]
        self.scale = torch.repeat_interleave(torch.tensor(scales, dtype=ACC), per_layer).to(device)
        self.gamma = torch.repeat_interleave(torch.tensor(gammas, dtype=ACC), per_layer).to(device)
        index_dtype = torch.int32 if self.numel < 2**31 else torch.int64
        filter_ids = torch.arange(self.filters, dtype=index_dtype)
        self.index = torch.repeat_interleave(filter_ids, lengths).to(device)
        self.lock = threading.Lock()
        self._buffers: dict[str, Tensor] = {}

    def buffer(self, name: str, dtype: torch.dtype) -> Tensor:
        """A work buffer of ``numel`` values, only ever used inside one forward or backward call.

        On the CPU it is kept and reused (hold ``lock``); elsewhere it is a fresh tensor (CUDA's caching
        allocator makes that cheap, and nothing needs holding)."""
        if self.device.type != "cpu":
            return torch.empty(self.numel, dtype=dtype, device=self.device)
        buf = self._buffers.get(name)
        if buf is None or buf.dtype != dtype:
            buf = self._buffers[name] = torch.empty(self.numel, dtype=dtype)
        return buf

    def segment_sum(self, values: Tensor) -> Tensor:
        """Per-filter sums of a flat ``(N,)`` tensor, accumulated in float64: ``(F,)`` float64."""
        if values.dtype != ACC:
            values = self.buffer("acc", ACC).copy_(values)
        return torch.segment_reduce(values, "sum", offsets=self.offsets, unsafe=True)

    def segment_sum_of_product(self, a: Tensor, b: Tensor) -> Tensor:
        """Per-filter sums of ``a * b`` (the product rounded to ``a``'s dtype, summed in float64)."""
        product = torch.mul(a, b, out=self.buffer("acc", ACC))
        return torch.segment_reduce(product, "sum", offsets=self.offsets, unsafe=True)

    def spread(self, per_filter: Tensor, out: Tensor | None = None) -> Tensor:
        """Each filter's value repeated over its weights: ``(F,)`` -> ``(N,)`` (one gather)."""
        return torch.index_select(per_filter, 0, self.index, out=out)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("lock")
        state["_buffers"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.lock = threading.Lock()


def plan_key(layers: Iterable[PWSConv2d]) -> tuple[Any, ...]:
    """What a :class:`SegmentPlan` depends on: each layer's weight shape and standardization options."""
    return tuple(
        (tuple(layer.weight.shape), layer.gamma, layer.gamma_mode, layer.fan_in_scale) for layer in layers
    )


def standardize_flat(x: Tensor, alpha: Tensor, plan: SegmentPlan, on_backward: Any = None) -> Tensor:
    """Eq. (12) for every filter of ``plan`` at once: ``alpha_f W_hat_f`` for the flat raw weights ``x``.

    ``x``: the ``N`` raw weights of all layers, concatenated (``(N,)``); ``alpha``: one gain per filter
    (``(F,)``). Differentiable in both (a custom autograd function; float64 gradcheck in the tests).
    ``on_backward``, if given, is called with no argument at each backward pass.
    """
    if x.shape != (plan.numel,) or alpha.shape != (plan.filters,):
        raise ValueError(f"standardize_flat: x must be ({plan.numel},) and alpha ({plan.filters},), "
                         f"got {tuple(x.shape)} and {tuple(alpha.shape)}")
    return _SegmentedStandardize.apply(x, alpha, plan, on_backward)


class _SegmentedStandardize(torch.autograd.Function):
    """Eq. (12) forward and backward over the flat weights: a fixed number of segmented ops (module doc)."""

    @staticmethod
    def forward(ctx, x: Tensor, alpha: Tensor, plan: SegmentPlan, on_backward: Any) -> Tensor:
        x = x.contiguous()
        with plan.lock:
            mean = (plan.segment_sum(x) / plan.n).to(x.dtype)
            xc = plan.spread(mean, out=plan.buffer("a", x.dtype))
            torch.sub(x, xc, out=xc)  # x - E[W_f]
            rstd = (plan.segment_sum_of_product(xc, xc) / plan.n + plan.gamma).rsqrt()
            k = (alpha.to(ACC) * plan.scale * rstd).to(x.dtype)
            out = plan.spread(k).mul_(xc)
        # Read from ctx, not save_for_backward: the node may be traversed by several backward passes (module
        # doc). None of them is an output of this function, so no reference cycle.
        ctx.plan, ctx.x, ctx.mean, ctx.rstd, ctx.k, ctx.on_backward = plan, x, mean, rstd, k, on_backward
        ctx.alpha_dtype = alpha.dtype
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None, None]:
        plan, x, rstd, k = ctx.plan, ctx.x, ctx.rstd, ctx.k
        need_x, need_alpha = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad = grad.contiguous()
        grad_x = grad_alpha = None
        with plan.lock:
            xc = plan.spread(ctx.mean, out=plan.buffer("a", x.dtype))
            torch.sub(x, xc, out=xc)
            sum_gxc = plan.segment_sum_of_product(grad, xc)  # S_f(g * (x - mean))
            if need_alpha:
                grad_alpha = (plan.scale * rstd * sum_gxc).to(ctx.alpha_dtype)
            if need_x:
                k_acc = k.to(ACC)
                q = (k_acc * plan.segment_sum(grad) / plan.n).to(x.dtype)
                r = (k_acc * rstd.square() * sum_gxc / plan.n).to(x.dtype)
                t = plan.spread(r, out=plan.buffer("b", x.dtype)).mul_(xc)  # r * xc
                t.add_(plan.spread(q, out=xc))  # + q (xc no longer needed)
                grad_x = plan.spread(k).mul_(grad).sub_(t)  # k g - q - r xc
        if ctx.on_backward is not None:
            ctx.on_backward()
        return grad_x, grad_alpha, None, None


@dataclass
class _Kept:
    """The kernels of the last computation and what they were computed from, per layer."""

    kernels: list[Tensor]
    states: list[tuple[Any, ...]]
    grad: bool
    inference: bool


def _layer_state(layer: PWSConv2d) -> tuple[Any, ...]:
    w, a = layer.weight, layer.alpha
    return (w, w._version, w.data_ptr(), a, a._version, a.data_ptr(), layer.gamma, layer.gamma_mode,
            layer.fan_in_scale)


def _same_state(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return a[0] is b[0] and a[3] is b[3] and a[1:3] == b[1:3] and a[4:] == b[4:]


class FusedStandardization:
    """The kernels ``alpha_o W_hat_o`` of several PWS layers, computed together (module doc).

    ``kernels()`` computes all of them now (one segmented standardization per device and dtype);
    ``kernel(i)`` returns layer ``i``'s from the last computation, or computes them all again when that is
    stale. :func:`fuse_standardization` makes each layer's ``effective_weight`` call ``kernel(i)``.
    """

    def __init__(self, layers: Iterable[PWSConv2d]) -> None:
        self.layers: list[PWSConv2d] = list(dict.fromkeys(layers))
        for layer in self.layers:
            if not isinstance(layer, PWSConv2d):
                raise TypeError(f"FusedStandardization takes PWSConv2d layers, got {type(layer).__name__}")
        self._plans: dict[tuple[Any, ...], SegmentPlan] = {}
        self._kept: _Kept | None = None
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self.layers)

    def kernels(self) -> list[Tensor]:
        """Every layer's kernel, computed now, in the order of ``layers`` (not kept)."""
        return self._compute(on_backward=None)

    def kernel(self, i: int) -> Tensor:
        """Layer ``i``'s kernel: the kept one when still valid for that layer, else all of them anew."""
        with self._lock:
            kept = self._kept
            if kept is None or not self._valid(kept, i):
                self._kept = None  # free the old kernels (and their graph) before computing the new ones
                states = [_layer_state(layer) for layer in self.layers]
                kept = _Kept([], states, torch.is_grad_enabled(), torch.is_inference_mode_enabled())
                kept.kernels = self._compute(on_backward=_Forget(self, kept))
                self._kept = kept
            return kept.kernels[i]

    def invalidate(self) -> None:
        """Drop the kept kernels: the next request computes them again."""
        with self._lock:
            self._kept = None

    def _valid(self, kept: _Kept, i: int) -> bool:
        if torch.is_grad_enabled() and not kept.grad:
            return False
        if kept.inference and not torch.is_inference_mode_enabled():
            return False
        return _same_state(kept.states[i], _layer_state(self.layers[i]))

    def _forget(self, kept: _Kept) -> None:
        with self._lock:
            if self._kept is kept:
                self._kept = None

    def plan(self, layers: list[PWSConv2d], device: torch.device, dtype: torch.dtype) -> SegmentPlan:
        """The (cached) plan of ``layers`` on ``device`` in ``dtype``."""
        key = (device, dtype, plan_key(layers))
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= 8:  # options or devices keep changing: do not grow without bound
                self._plans.clear()
            plan = self._plans[key] = SegmentPlan(layers, device, dtype)
        return plan

    def _compute(self, on_backward: Any) -> list[Tensor]:
        groups: dict[tuple[torch.device, torch.dtype], list[int]] = {}
        for i, layer in enumerate(self.layers):
            groups.setdefault((layer.weight.device, layer.weight.dtype), []).append(i)
        kernels: list[Tensor | None] = [None] * len(self.layers)
        for (device, dtype), members in groups.items():
            layers = [self.layers[i] for i in members]
            plan = self.plan(layers, device, dtype)
            x = torch.cat([layer.weight.reshape(-1) for layer in layers])
            alpha = torch.cat([layer.alpha for layer in layers]).to(dtype)
            flat = standardize_flat(x, alpha, plan, on_backward)
            for i, piece, shape in zip(members, flat.split(plan.numels), plan.shapes, strict=True):
                kernels[i] = piece.view(shape)
        return kernels  # type: ignore[return-value]

    def __getstate__(self) -> dict[str, Any]:  # copies and pickles start without kept kernels or plans
        return {"layers": self.layers}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["layers"])


class _Forget:
    """Called at each backward pass through kept kernels: the fusion drops them (weak reference, no cycle)."""

    __slots__ = ("fusion", "kept")

    def __init__(self, fusion: FusedStandardization, kept: _Kept) -> None:
        self.fusion = weakref.ref(fusion)
        self.kept = weakref.ref(kept)

    def __call__(self) -> None:
        fusion, kept = self.fusion(), self.kept()
        if fusion is not None and kept is not None:
            fusion._forget(kept)


class _FusedKernel:
    """A fused layer's ``effective_weight``: its kernel from the network's fusion."""

    __slots__ = ("fusion", "index")

    def __init__(self, fusion: FusedStandardization, index: int) -> None:
        self.fusion, self.index = fusion, index

    def __call__(self) -> Tensor:
        return self.fusion.kernel(self.index)


def standardize_all(layers: Iterable[PWSConv2d]) -> list[Tensor]:
    """The kernels ``alpha_o W_hat_o`` (eq. 12) of ``layers``, computed together now (one segmented op)."""
    return FusedStandardization(layers).kernels()


def pws_layers(model: nn.Module) -> list[PWSConv2d]:
    """Every PWSConv2d of ``model`` (itself included), once each, in ``modules()`` order."""
    return [m for m in model.modules() if isinstance(m, PWSConv2d)]


def fuse_standardization(model: nn.Module) -> nn.Module:
    """Make every PWS layer of ``model`` take its kernel from one :class:`FusedStandardization`; return model.

    In place. Parameters, buffers, state_dict keys and the classes of the layers do not change; ``fold``,
    ``convert`` and ``copy.deepcopy`` work as before (a deep copy is fused on its own). Fusing again
    replaces the previous fusion of these layers. Meant for GPUs: on a CPU the per-layer path is faster
    (module doc).
    """
    unfuse_standardization(model)
    layers = pws_layers(model)
    fusion = FusedStandardization(layers)
    for i, layer in enumerate(layers):
        layer.effective_weight = _FusedKernel(fusion, i)
    return model


def unfuse_standardization(model: nn.Module) -> nn.Module:
    """Back to each layer standardizing its own kernel (the per-layer path); return ``model``."""
    for layer in pws_layers(model):
        if isinstance(layer.__dict__.get("effective_weight"), _FusedKernel):
            del layer.__dict__["effective_weight"]
    return model


def fusion_of(module: nn.Module) -> FusedStandardization | None:
    """The fusion serving ``module`` (a PWS layer, or the first fused PWS layer of a model), or None."""
    for layer in pws_layers(module):
        fused = layer.__dict__.get("effective_weight")
        if isinstance(fused, _FusedKernel):
            return fused.fusion
    return None
