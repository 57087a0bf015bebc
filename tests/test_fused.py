"""The fused standardization (pws.nn.fused): eq. (12) and (13) for every PWS layer of a network at once.

Against an explicit float64 reference and against the per-layer path (``PWSConv2d.effective_weight``
called on the class, which is what an unfused layer runs): kernels, gradients, whole networks (VGG-16 stack,
pre-activation ResNet), training steps, state_dict, fold, copies; the number of ops per step counted by the
profiler; timm's ScaledStdConv2d as the same math from another code base (skipped without timm).
"""

from __future__ import annotations

import copy
import math
from collections import Counter

import pytest
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from pws.models.resnet_cifar import resnet_cifar
from pws.models.vgg import vgg16_features
from pws.nn import (
    FusedStandardization,
    NormMethod,
    PWSConv2d,
    fold,
    fuse_standardization,
    standardize_all,
    unfuse_standardization,
)
from pws.nn.fused import SegmentPlan, fusion_of, pws_layers, standardize_flat

pytestmark = pytest.mark.usefixtures("single_thread")

F64 = torch.float64
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]


def per_layer(layer: PWSConv2d) -> torch.Tensor:
    """The per-layer path: what an unfused layer convolves with."""
    return PWSConv2d.effective_weight(layer)


def ref_kernel(layer: PWSConv2d) -> torch.Tensor:
    """alpha_o * s * (W_o - E[W_o]) / sqrt(Var[W_o] + gamma) filter by filter, in float64 (eq. 12)."""
    w = layer.weight.detach().to(F64)
    n = w[0].numel()
    s = math.sqrt(2.0 / n) if layer.fan_in_scale else 1.0
    out = torch.empty_like(w)
    for o in range(w.shape[0]):
        mean = w[o].sum() / n
        var = ((w[o] - mean) ** 2).sum() / n
        out[o] = layer.alpha[o].item() * s * (w[o] - mean) / torch.sqrt(var + layer.standardization_gamma())
    return out


def mixed_layers(dtype: torch.dtype = torch.float32, device: str = "cpu") -> list[PWSConv2d]:
    """PWS layers of different fan-ins, groups and options, with raw filter means away from 0."""
    layers = [
        PWSConv2d(3, 5, 3, gamma=1e-3),
        PWSConv2d(5, 4, 1, gamma=1e-4, gamma_mode="equiv"),
        PWSConv2d(4, 6, (3, 2), groups=2, gamma=1e-5, fan_in_scale=False),
        PWSConv2d(6, 3, 2, learn_alpha=False, gamma=0.0),
    ]
    with torch.no_grad():
        for layer in layers:
            layer.weight.add_(0.2 * torch.randn(layer.out_channels, 1, 1, 1))
            layer.alpha.uniform_(0.5, 1.5)
    return [layer.to(device=device, dtype=dtype) for layer in layers]


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """max|a - b| / max|b|."""
    return ((a - b).abs().max() / b.abs().max()).item()


# --- the segmented function -----------------------------------------------------------------------------


def test_standardize_flat_gradcheck_float64():
    layers = mixed_layers(F64)
    plan = SegmentPlan(layers, torch.device("cpu"), F64)
    x = torch.cat([layer.weight.detach().reshape(-1) for layer in layers]).requires_grad_()
    alpha = torch.cat([layer.alpha.detach() for layer in layers]).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, a: standardize_flat(x, a, plan), (x, alpha))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=["float64", "float32"])
def test_kernels_are_eq12_and_equal_the_per_layer_path(device, dtype):
    layers = mixed_layers(dtype, device)
    fused = standardize_all(layers)
    tol = 1e-13 if dtype == F64 else 2e-6
    for layer, kernel in zip(layers, fused, strict=True):
        assert kernel.shape == layer.weight.shape and kernel.dtype == dtype
        assert relative(kernel.cpu().to(F64), ref_kernel(layer.cpu())) < tol
        assert relative(kernel, per_layer(layer)) < tol
        # W_hat has zero mean per filter (what makes eq. 13 hold)
        per_filter_mean = kernel.detach().to(F64).reshape(layer.out_channels, -1).mean(1)
        assert per_filter_mean.abs().max().item() < 10 * tol * kernel.abs().max().item()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=["float64", "float32"])
def test_gradients_equal_the_per_layer_path_and_have_zero_mean_per_filter(device, dtype):
    layers = mixed_layers(dtype, device)
    upstream = [torch.randn_like(layer.weight) for layer in layers]

    def grads(kernels: list[torch.Tensor]) -> list[torch.Tensor]:
        params = [p for layer in layers for p in (layer.weight, layer.alpha) if p.requires_grad]
        return list(torch.autograd.grad(kernels, params, upstream))

    expected, got = grads([per_layer(layer) for layer in layers]), grads(standardize_all(layers))
    tol = 1e-12 if dtype == F64 else 2e-6
    for e, g in zip(expected, got, strict=True):
        assert relative(g, e) < tol
    weight_grads = got[0::2]  # weight, alpha, ..., weight: the last layer has no trainable alpha
    for layer, g in zip(layers, weight_grads, strict=True):
        assert g.shape == layer.weight.shape
        mean = g.to(F64).reshape(layer.out_channels, -1).mean(1).abs().max().item()
        assert mean < (1e-14 if dtype == F64 else 1e-7) * g.abs().max().item()  # eq. (13)


# --- whole networks ---------------------------------------------------------------------------------------


def vgg_like() -> nn.Module:
    return nn.Sequential(vgg16_features(NormMethod("pws")), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(512, 10))


def resnet_like() -> nn.Module:
    return resnet_cifar(NormMethod("pws"), num_classes=10, units_per_stage=1)


def perturbed(model: nn.Module, filter_means: float) -> nn.Module:
    with torch.no_grad():
        for layer in pws_layers(model):
            layer.alpha.uniform_(0.8, 1.2)
            layer.bias.normal_(0, 0.01)
            layer.weight.add_(filter_means * torch.randn(layer.out_channels, 1, 1, 1))
    return model


def outputs_and_grads(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    y = model(x)
    y.square().mean().backward()
    return y.detach(), {name: p.grad for name, p in model.named_parameters()}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("build", [vgg_like, resnet_like], ids=["vgg16", "resnet"])
@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=["float64", "float32"])
def test_fused_network_equals_per_layer_network(build, dtype, device):
    """Same outputs and gradients of every parameter. Float64 with raw filter means up to ~0.6 (exact up to
    rounding); float32 near the init, where the deep unnormalized net is well conditioned (on a GPU with
    TF32 off: its rounding of the inputs would hide the comparison)."""
    model = perturbed(build(), 0.2 if dtype == F64 else 0.0).to(device=device, dtype=dtype)
    fused = fuse_standardization(copy.deepcopy(model))
    x = torch.randn(4, 3, 16, 16, dtype=dtype, device=device)
    with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=False, allow_tf32=False):
        y, g = outputs_and_grads(model, x)
        y_fused, g_fused = outputs_and_grads(fused, x)
    tol = 1e-11 if dtype == F64 else 1e-4
    assert relative(y_fused, y) < tol
    assert g.keys() == g_fused.keys()
    for name in g:
        assert relative(g_fused[name], g[name]) < tol, name


def test_fused_training_follows_the_per_layer_training():
    """Kernels are computed again after every optimizer step (and after every backward)."""
    model = perturbed(vgg_like(), 0.0)
    fused = fuse_standardization(copy.deepcopy(model))
    x = torch.randn(4, 3, 16, 16)
    for m in (model, fused):
        opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
        for _ in range(3):
            opt.zero_grad()
            m(x).square().mean().backward()
            opt.step()
    for p, q in zip(model.parameters(), fused.parameters(), strict=True):
        assert relative(q, p) < 1e-5
    with torch.no_grad():
        assert relative(fused(x), model(x)) < 1e-4


def test_state_dict_keys_and_loading_both_ways():
    model = perturbed(vgg_like(), 0.1)
    fused = fuse_standardization(copy.deepcopy(model))
    assert list(fused.state_dict()) == list(model.state_dict())
    assert all(type(m) is PWSConv2d for m in pws_layers(fused))
    x = torch.randn(2, 3, 16, 16)
    other = perturbed(vgg_like(), 0.1)
    with torch.no_grad():
        fused(x)  # kernels kept from the current weights ...
        fused.load_state_dict(other.state_dict())  # ... and computed again after loading
        assert relative(fused(x), other(x)) < 1e-5
        other.load_state_dict(fused.state_dict())
        assert relative(other(x), fused(x)) < 1e-5


def test_fold_of_a_fused_model():
    model = perturbed(vgg_like(), 0.1)
    fused = fuse_standardization(copy.deepcopy(model))
    folded = fold(fused)
    assert not any(isinstance(m, PWSConv2d) for m in folded.modules())
    assert fusion_of(fused) is not None  # the original stays fused
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = model.eval()(x)
        assert relative(folded(x), expected) < 1e-5
        assert relative(fold(model)(x), expected) < 1e-5


def test_copies_unfuse_and_refuse():
    model = fuse_standardization(perturbed(vgg_like(), 0.1))
    x = torch.randn(2, 3, 16, 16)
    clone = copy.deepcopy(model)
    assert fusion_of(clone) is not None and fusion_of(clone) is not fusion_of(model)
    assert all(a is b for a, b in zip(fusion_of(clone).layers, pws_layers(clone), strict=True))
    with torch.no_grad():
        clone[0][0].conv.weight.mul_(2.0)  # the copy has weights of its own
        y = model(x)
        assert relative(y, unfuse_standardization(copy.deepcopy(model))(x)) < 1e-5
        assert (clone(x) - y).abs().max() > 0
    unfuse_standardization(model)
    assert fusion_of(model) is None and "effective_weight" not in vars(model[0][0].conv)
    fuse_standardization(fuse_standardization(model))
    assert len(fusion_of(model)) == 13


def test_kernels_are_kept_until_something_changes(monkeypatch):
    model = fuse_standardization(perturbed(vgg_like(), 0.1))
    fusion = fusion_of(model)
    calls = []
    compute = fusion._compute
    monkeypatch.setattr(fusion, "_compute", lambda **kw: calls.append(1) or compute(**kw))
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        model(x)
        model(x)
    assert len(calls) == 1  # evaluation: once until the weights change
    layer = pws_layers(model)[5]
    with torch.no_grad():
        layer.alpha.mul_(1.5)
        y = model(x)
    assert len(calls) == 2
    assert relative(layer.effective_weight(), per_layer(layer)) < 1e-6
    model(x).sum().backward()  # gradients needed: computed again, with their graph ...
    assert len(calls) == 3
    model(x)  # ... and again after the backward pass
    assert len(calls) == 4
    with torch.no_grad():
        model.double()
        assert relative(model(x.double()), y.double()) < 1e-5
    assert len(calls) == 5
    fusion.invalidate()
    with torch.no_grad():
        model(x.double())
    assert len(calls) == 6


def test_kernels_shared_by_two_forwards_backpropagate_twice():
    model = perturbed(vgg_like(), 0.0)
    fused = fuse_standardization(copy.deepcopy(model))
    x1, x2 = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16)
    for m in (model, fused):
        loss1, loss2 = m(x1).square().mean(), m(x2).square().mean()
        loss1.backward()
        loss2.backward()
    for p, q in zip(model.parameters(), fused.parameters(), strict=True):
        assert relative(q.grad, p.grad) < 1e-4


def test_data_init_of_alpha():
    def build() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(PWSConv2d(3, 8, 3, alpha_init="data"), nn.ReLU(),
                             PWSConv2d(8, 8, 3, alpha_init="data"))

    model, fused = build(), fuse_standardization(build())
    x = torch.randn(4, 3, 12, 12)
    y, y_fused = model(x), fused(x)
    for a, b in zip(pws_layers(model), pws_layers(fused), strict=True):
        assert bool(b.alpha_initialized) and relative(b.alpha, a.alpha) < 1e-6
    assert relative(y_fused, y) < 1e-5


def test_layers_on_two_dtypes_are_fused_per_dtype():
    layers = mixed_layers()
    layers[1].double()
    kernels = FusedStandardization(layers).kernels()
    assert [k.dtype for k in kernels] == [torch.float32, F64, torch.float32, torch.float32]
    for layer, kernel in zip(layers, kernels, strict=True):
        assert relative(kernel, per_layer(layer)) < 2e-6


# --- ops per step, from the profiler ----------------------------------------------------------------------

# Ops that launch no kernel: views, metadata, allocation (counted, they would only add noise).
NO_KERNEL = {
    f"aten::{name}"
    for name in (
        "view", "as_strided", "_reshape_alias", "reshape", "unsqueeze", "squeeze", "expand", "split",
        "split_with_sizes", "narrow", "slice", "select", "t", "transpose", "permute", "detach", "alias",
        "empty", "empty_strided", "empty_like", "resize_", "result_type", "to", "lift_fresh", "_unsafe_view",
        "contiguous", "flatten", "unflatten",
    )
}


def kernel_ops(step, device: str = "cpu") -> Counter:
    """The ops of one call of ``step`` that compute something: leaf aten ops of the profile, views and
    allocations left out (on a GPU: the CUDA kernels launched)."""
    step()  # warm up (plans, first allocations)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        step()
        if device == "cuda":
            torch.cuda.synchronize()
    if device == "cuda":
        return Counter(e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)
    return Counter(e.name for e in prof.events()
                   if not e.cpu_children and e.name.startswith("aten::") and e.name not in NO_KERNEL)


def pws_stack(layers: int, device: str = "cpu", conv: type[nn.Conv2d] = PWSConv2d) -> nn.Sequential:
    blocks = [m for i in range(layers) for m in (conv(3 if i == 0 else 8, 8, 3, padding=1), nn.ReLU())]
    return nn.Sequential(*blocks).to(device)


def standardization_step(model: nn.Module, fused: bool):
    """Forward + backward of the kernels of every PWS layer of ``model`` (no conv)."""
    layers = pws_layers(model)
    upstream = [torch.randn_like(layer.weight) for layer in layers]
    fusion = FusedStandardization(layers)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        kernels = fusion.kernels() if fused else [per_layer(layer) for layer in layers]
        torch.autograd.backward(kernels, upstream)

    return step


@pytest.mark.parametrize("device", DEVICES)
def test_ops_per_step_flat_for_fused_growing_per_layer(device):
    counts = {
        (fused, n): sum(kernel_ops(standardization_step(pws_stack(n, device), fused), device).values())
        for fused in (False, True) for n in (4, 8, 16)
    }
    print({f"{'fused' if f else 'per-layer'} {n} layers": c for (f, n), c in counts.items()})
    assert counts[True, 4] == counts[True, 8] == counts[True, 16]
    per = [counts[False, n] for n in (4, 8, 16)]
    assert per[2] - per[1] == 2 * (per[1] - per[0]) > 0  # linear in the number of layers
    assert counts[True, 16] < per[2]


def test_fused_standardization_adds_a_constant_to_the_network_step():
    """A whole training forward + backward: the fused PWS net minus the plain-conv net of the same shape is
    the same number of ops for 4, 8 and 16 layers."""
    x = torch.randn(2, 3, 8, 8)

    def step(model: nn.Module):
        def run() -> None:
            model.zero_grad(set_to_none=True)
            model(x).square().mean().backward()

        return run

    extra = []
    for n in (4, 8, 16):
        fused = sum(kernel_ops(step(fuse_standardization(pws_stack(n)))).values())
        plain = sum(kernel_ops(step(pws_stack(n, conv=nn.Conv2d))).values())
        extra.append(fused - plain)
    assert extra[0] == extra[1] == extra[2] > 0


# --- timm's ScaledStdConv2d: the same kernel -----------------------------------------------------------


def kernel_by_probing(conv: nn.Conv2d) -> torch.Tensor:
    """The kernel a bias-free, padding-free, groups=1 conv convolves with: its outputs on one-hot inputs."""
    kh, kw = conv.kernel_size
    n = conv.in_channels * kh * kw
    probes = torch.eye(n, dtype=conv.weight.dtype).view(n, conv.in_channels, kh, kw)
    with torch.no_grad():
        return conv(probes).view(n, conv.out_channels).t().reshape(conv.weight.shape)


def test_timm_scaled_std_conv_is_the_same_kernel():
    """timm's ScaledStdConv2d: ``gain * gamma * n**-0.5 * (W - E[W]) / sqrt(Var[W] + eps)`` (batch-norm of the
    weight, biased variance): PWS with ``gamma_timm = sqrt(2)``, ``eps = gamma_pws``, ``gain = alpha``."""
    from timm.layers import std_conv

    for pws in (PWSConv2d(6, 5, 3, bias=False, gamma=1e-3, dtype=F64),
                PWSConv2d(4, 3, (1, 2), bias=False, gamma=1e-5, dtype=F64)):
        with torch.no_grad():
            pws.weight.add_(0.2 * torch.randn(pws.out_channels, 1, 1, 1, dtype=F64))
            pws.alpha.uniform_(0.5, 1.5)
        timm_conv = std_conv.ScaledStdConv2d(
            pws.in_channels, pws.out_channels, pws.kernel_size, padding=0, bias=False,
            gamma=math.sqrt(2.0), eps=pws.standardization_gamma(),
        ).double()
        with torch.no_grad():
            timm_conv.weight.copy_(pws.weight)
            timm_conv.gain.copy_(pws.alpha.view(-1, 1, 1, 1))
        timm_kernel = kernel_by_probing(timm_conv)
        assert relative(kernel_by_probing(pws), timm_kernel) < 1e-13
        assert relative(standardize_all([pws])[0], timm_kernel) < 1e-13
        assert relative(timm_kernel, ref_kernel(pws)) < 1e-13
