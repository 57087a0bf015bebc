"""PWSConv2d against eq. (12) and (13) of the paper, computed independently in float64.

The reference standardizes each filter with explicit per-filter sums (biased variance, gamma inside the square
root) and convolves through ``F.unfold`` with a per-filter loop, so it shares no code with the layer.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pws.nn import PWSConv2d
from pws.nn.pws_conv import effective_gamma, standardize_weight, standardize_weight_batch_norm
from pws.optim import param_groups

pytestmark = pytest.mark.usefixtures("single_thread")

F64 = torch.float64
# The forward tests run on every device at hand: on CUDA the layer standardizes through F.batch_norm
# (cuDNN) instead of the CPU's own function, and is held to the same float64 reference.
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                 reason="needs a CUDA GPU"))]


def no_tf32():
    """cuDNN convs in full float32 (torch allows TF32 by default), for comparisons at float32 tolerance."""
    return torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=False, allow_tf32=False)


def output_on(device: str, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A copy of ``layer`` applied to ``x`` on ``device`` (TF32 off on a GPU), the output back on the CPU."""
    with no_tf32():
        return copy.deepcopy(layer).to(device)(x.to(device)).cpu()


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def ref_standardize(weight: torch.Tensor, gamma: float, fan_in_scale: bool = True) -> torch.Tensor:
    """Eq. (12) filter by filter: s * (W_o - E[W_o]) / sqrt(Var[W_o] + gamma), biased Var, s = sqrt(2/n)."""
    w = weight.detach().to(F64)
    out = torch.empty_like(w)
    n = w[0].numel()
    s = math.sqrt(2.0 / n) if fan_in_scale else 1.0
    for o in range(w.shape[0]):
        flat = w[o].flatten()
        mean = flat.sum() / n
        var = ((flat - mean) ** 2).sum() / n
        out[o] = s * (w[o] - mean) / torch.sqrt(var + gamma)
    return out


def ref_conv(x, kernel, bias, stride, padding, dilation, groups, padding_mode="zeros"):
    """conv2d through unfold, one output filter at a time (float64)."""
    x = x.detach().to(F64)
    kernel = kernel.to(F64)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (
        kernel.shape[2:], _pair(stride), _pair(padding), _pair(dilation)
    )
    if padding_mode != "zeros":
        x = F.pad(x, (pw, pw, ph, ph), mode=padding_mode)
        ph = pw = 0
    n_batch, c_in, h, w = x.shape
    h_out = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    w_out = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    cols = F.unfold(x, (kh, kw), dilation=(dh, dw), padding=(ph, pw), stride=(sh, sw))
    cols = cols.view(n_batch, c_in, kh * kw, -1)
    c_group, o_group = c_in // groups, kernel.shape[0] // groups
    out = torch.empty(n_batch, kernel.shape[0], h_out * w_out, dtype=F64)
    for o in range(kernel.shape[0]):
        g = o // o_group
        patch = cols[:, g * c_group : (g + 1) * c_group].reshape(n_batch, c_group * kh * kw, -1)
        out[:, o] = torch.einsum("k,nkl->nl", kernel[o].flatten(), patch)
        if bias is not None:
            out[:, o] += bias[o].to(F64)
    return out.view(n_batch, -1, h_out, w_out)


def ref_pws(layer: PWSConv2d, x: torch.Tensor, gamma: float | None = None) -> torch.Tensor:
    """Y_o = alpha_o * conv(X, W_hat_o) + beta_o from the layer's raw parameters."""
    gamma = layer.gamma if gamma is None else gamma
    w_hat = ref_standardize(layer.weight, gamma, layer.fan_in_scale)
    kernel = layer.alpha.detach().to(F64).view(-1, 1, 1, 1) * w_hat
    return ref_conv(
        x, kernel, None if layer.bias is None else layer.bias.detach(), layer.stride, layer.padding,
        layer.dilation, layer.groups, layer.padding_mode,
    )


def randomize(layer: PWSConv2d) -> PWSConv2d:
    """Raw filters with shifted means and different scales; alpha and beta away from their init."""
    with torch.no_grad():
        o = layer.out_channels
        layer.weight.mul_(torch.rand(o, 1, 1, 1, dtype=layer.weight.dtype) * 2 + 0.1)
        layer.weight.add_(torch.randn(o, 1, 1, 1, dtype=layer.weight.dtype) * 0.3)
        layer.alpha.copy_(torch.rand(o) + 0.5)
        if layer.bias is not None:
            layer.bias.normal_()
    return layer


GEOMETRIES = [
    # in, out, kernel, stride, padding, dilation, groups, fan_in_scale, padding_mode, bias
    (4, 6, (3, 2), (2, 1), (1, 0), (1, 2), 2, True, "zeros", True),
    (6, 6, 3, 1, 1, 1, 3, False, "zeros", True),
    (3, 4, (1, 3), 2, (0, 2), 1, 1, True, "reflect", True),
    (4, 8, 5, 1, 2, 2, 4, False, "zeros", False),
    (3, 5, (2, 3), (1, 2), 1, (2, 1), 1, True, "circular", True),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("gamma", [1e-3, 0.37])
def test_forward_matches_eq12_float64(geometry, gamma, device):
    c_in, c_out, k, stride, padding, dilation, groups, fan_in_scale, mode, bias = geometry
    layer = randomize(PWSConv2d(
        c_in, c_out, k, stride, padding, dilation, groups, bias, mode, dtype=F64,
        gamma=gamma, fan_in_scale=fan_in_scale,
    ))
    x = torch.randn(2, c_in, 9, 8, dtype=F64)
    torch.testing.assert_close(output_on(device, layer, x), ref_pws(layer, x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("geometry", GEOMETRIES[:2])
def test_forward_float32_matches_float64_reference(geometry, device):
    c_in, c_out, k, stride, padding, dilation, groups, fan_in_scale, mode, bias = geometry
    layer = randomize(PWSConv2d(
        c_in, c_out, k, stride, padding, dilation, groups, bias, mode, fan_in_scale=fan_in_scale
    ))
    x = torch.randn(3, c_in, 10, 11)
    y = output_on(device, layer, x)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y.to(F64), ref_pws(layer, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype, tol", [(F64, 1e-12), (torch.float32, 2e-5)])
@pytest.mark.parametrize("gamma_mode", ["var", "equiv"])
@pytest.mark.parametrize("fan_in_scale", [True, False])
def test_per_filter_mean_zero_and_variance(dtype, tol, gamma_mode, fan_in_scale):
    """E[W_hat_o] = 0 and Var[W_hat_o] = s^2 Var[W_o] / (Var[W_o] + gamma) for every filter."""
    layer = randomize(PWSConv2d(
        12, 16, 3, groups=2, dtype=dtype, gamma=2e-2, gamma_mode=gamma_mode, fan_in_scale=fan_in_scale
    ))
    with torch.no_grad():
        layer.alpha.fill_(1.0)
        w_hat = layer.effective_weight().to(F64).flatten(1)
    raw = layer.weight.detach().to(F64).flatten(1)
    n = raw.shape[1]
    assert n == 6 * 9 == layer.fan_in
    s2 = 2.0 / n if fan_in_scale else 1.0
    g = 2e-2 if gamma_mode == "var" else 2 * 2e-2 / n
    raw_var = raw.var(dim=1, correction=0)
    assert raw.mean(dim=1).abs().max() > 0.05  # the raw filters really are shifted
    assert w_hat.mean(dim=1).abs().max() < tol * w_hat.abs().max()
    torch.testing.assert_close(
        w_hat.var(dim=1, correction=0), s2 * raw_var / (raw_var + g), rtol=10 * tol, atol=0
    )


@pytest.mark.parametrize("gamma", [1e-3, 0.0])
def test_cpu_function_and_batch_norm_form_agree(gamma):
    """Both implementations of eq. (12) (CPU: custom autograd function; other devices: F.batch_norm)."""
    weight = (torch.randn(6, 4, 3, 2, dtype=F64) + torch.randn(6, 1, 1, 1, dtype=F64)).requires_grad_(True)
    scale = (torch.rand(6, dtype=F64) + 0.5).requires_grad_(True)
    grad = torch.randn(6, 4, 3, 2, dtype=F64)
    results = []
    for fn in (standardize_weight, standardize_weight_batch_norm):
        out = fn(weight, gamma, scale)
        torch.testing.assert_close(out.detach(), scale.detach().view(-1, 1, 1, 1) * ref_standardize(
            weight, gamma, fan_in_scale=False))
        results.append((out.detach(), *torch.autograd.grad(out, (weight, scale), grad)))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(lambda w, s: standardize_weight(w, gamma + 0.01, s), (weight, scale))


def test_alpha_scales_each_filter():
    layer = randomize(PWSConv2d(3, 5, 3, dtype=F64))
    kernel = layer.effective_weight().detach()
    w_hat = ref_standardize(layer.weight, layer.gamma)
    torch.testing.assert_close(kernel, layer.alpha.detach().view(-1, 1, 1, 1) * w_hat)


@pytest.mark.parametrize("gamma_mode", ["var", "equiv"])
@pytest.mark.parametrize("fan_in_scale", [True, False])
def test_eq13_raw_weight_gradient_has_zero_mean_per_filter(gamma_mode, fan_in_scale):
    layer = randomize(PWSConv2d(
        6, 8, (3, 2), stride=2, padding=1, groups=2, dtype=F64, gamma_mode=gamma_mode,
        fan_in_scale=fan_in_scale,
    ))
    plain = nn.Conv2d(6, 8, (3, 2), stride=2, padding=1, groups=2, dtype=F64)
    x = torch.randn(4, 6, 9, 9, dtype=F64)
    target = torch.randn(4, 8, 5, 5, dtype=F64)

    def loss(y):  # an arbitrary, non-symmetric loss
        return ((y - target) ** 2).mean() + y.tanh().sum() * 0.1 + (y[:, :3] ** 3).sum() * 1e-2

    loss(layer(x)).backward()
    grad = layer.weight.grad.flatten(1)
    assert grad.abs().max() > 1e-4
    assert grad.mean(dim=1).abs().max() < 1e-13 * grad.abs().max()
    loss(plain(x)).backward()  # the plain conv has no such property: the test has teeth
    assert plain.weight.grad.flatten(1).mean(dim=1).abs().max() > 1e-3 * plain.weight.grad.abs().max()


def gradcheck_module(module: nn.Module, x: torch.Tensor, names: list[str]) -> None:
    """gradcheck w.r.t. the input and the named parameters."""
    params = tuple(getattr(module, n).detach().clone().requires_grad_(True) for n in names)

    def f(x, *p):
        return torch.func.functional_call(module, dict(zip(names, p, strict=True)), (x,))

    assert torch.autograd.gradcheck(f, (x.requires_grad_(True), *params))


@pytest.mark.parametrize("gamma_mode", ["var", "equiv"])
def test_gradcheck_float64(gamma_mode):
    layer = randomize(PWSConv2d(
        4, 4, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2), groups=2, dtype=F64, gamma=0.05,
        gamma_mode=gamma_mode,
    ))
    gradcheck_module(layer, torch.randn(1, 4, 4, 5, dtype=F64), ["weight", "alpha", "bias"])


def test_never_stale_after_load_state_dict_in_eval_mode():
    a = randomize(PWSConv2d(4, 6, 3, padding=1)).eval()
    b = randomize(PWSConv2d(4, 6, 3, padding=1)).eval()
    x = torch.randn(2, 4, 7, 7)
    before = a(x)
    a.load_state_dict(b.state_dict())
    after = a(x)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, b(x))
    torch.testing.assert_close(after.to(F64), ref_pws(b, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_never_stale_after_optimizer_step(mode):
    layer = randomize(PWSConv2d(4, 6, 3, padding=1))
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    x = torch.randn(2, 4, 7, 7)
    layer.train(mode == "train")
    before = layer(x)
    before.square().mean().backward()
    opt.step()
    after = layer(x)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after.to(F64), ref_pws(layer, x), rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # an in-place edit of the raw weight shows up too
        layer.weight[0].mul_(-3.0)
    torch.testing.assert_close(layer(x).to(F64), ref_pws(layer, x), rtol=1e-5, atol=1e-5)


def test_learn_alpha_false_keeps_alpha_one_as_a_buffer():
    layer = PWSConv2d(4, 6, 3, learn_alpha=False)
    names = dict(layer.named_parameters())
    assert "alpha" not in names and set(names) == {"weight", "bias"}
    assert "alpha" in dict(layer.named_buffers()) and "alpha" in layer.state_dict()
    assert not layer.alpha.requires_grad
    torch.testing.assert_close(layer.alpha, torch.ones(6))
    groups = param_groups(layer, weight_decay=0.1)
    opt = torch.optim.SGD(groups, lr=1.0, momentum=0.9)
    x = torch.randn(2, 4, 6, 6)
    for _ in range(2):
        opt.zero_grad()
        layer(x).square().mean().backward()
        opt.step()
    torch.testing.assert_close(layer.alpha, torch.ones(6))
    with torch.no_grad():
        layer.bias.normal_()
    torch.testing.assert_close(layer(x).to(F64), ref_pws(layer, x), rtol=1e-5, atol=1e-5)


def test_gamma_mode_equiv_is_the_authors_form():
    """equiv: (W - E[W]) / sqrt(n Var[W] / 2 + gamma), i.e. gamma <- 2 gamma / n in eq. (12)."""
    layer = randomize(PWSConv2d(5, 4, 3, padding=1, dtype=F64, gamma=0.1, gamma_mode="equiv"))
    n = 45
    assert effective_gamma(0.1, n, "equiv") == pytest.approx(2 * 0.1 / n)
    raw = layer.weight.detach().flatten(1)
    mean = raw.mean(dim=1, keepdim=True)
    var = ((raw - mean) ** 2).mean(dim=1, keepdim=True)
    w_hat = ((raw - mean) / torch.sqrt(n * var / 2 + 0.1)).view_as(layer.weight)
    x = torch.randn(2, 5, 6, 6, dtype=F64)
    expected = ref_conv(x, layer.alpha.detach().view(-1, 1, 1, 1) * w_hat, layer.bias.detach(), 1, 1, 1, 1)
    torch.testing.assert_close(layer(x), expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(layer(x), ref_pws(layer, x, gamma=2 * 0.1 / n), rtol=1e-10, atol=1e-12)


def test_alpha_init_data_gives_output_variance_two_once():
    layer = PWSConv2d(8, 16, 3, padding=1, dtype=F64, alpha_init="data")
    x = torch.randn(4, 8, 10, 10, dtype=F64) * 3 + 1
    assert not bool(layer.alpha_initialized)
    layer.eval()
    layer(x)  # eval mode: no initialization
    assert not bool(layer.alpha_initialized)
    torch.testing.assert_close(layer.alpha.detach(), torch.ones(16, dtype=F64))
    layer.train()
    y = layer(x)
    assert bool(layer.alpha_initialized)
    assert y.var().item() == pytest.approx(2.0, rel=1e-9)
    alpha = layer.alpha.detach().clone()
    assert torch.allclose(alpha, alpha[0].expand_as(alpha))  # one scalar variance over the whole output
    assert alpha[0].item() != pytest.approx(1.0, rel=1e-3)
    layer(torch.randn(4, 8, 10, 10, dtype=F64) * 10)  # later forwards leave alpha alone
    torch.testing.assert_close(layer.alpha.detach(), alpha)

    # a checkpoint carries the flag: loading it does not re-initialize alpha on the next training forward
    with torch.no_grad():
        layer.alpha.mul_(0.7)
    state = layer.state_dict()
    assert "alpha_initialized" in state
    resumed = PWSConv2d(8, 16, 3, padding=1, dtype=F64, alpha_init="data")
    resumed.load_state_dict(state)
    resumed.train()
    resumed(torch.randn(4, 8, 10, 10, dtype=F64))
    torch.testing.assert_close(resumed.alpha.detach(), 0.7 * alpha)

    # ... and a checkpoint saved before the initialization re-arms it
    resumed.load_state_dict(PWSConv2d(8, 16, 3, padding=1, dtype=F64, alpha_init="data").state_dict())
    assert resumed(x).var().item() == pytest.approx(2.0, rel=1e-9)


def test_gamma_zero_is_plain_weight_standardization():
    layer = randomize(PWSConv2d(6, 8, 3, padding=1, dtype=F64, gamma=0.0))
    x = torch.randn(2, 6, 7, 7, dtype=F64)
    y = layer(x)
    torch.testing.assert_close(y, ref_pws(layer, x, gamma=0.0), rtol=1e-10, atol=1e-12)
    with torch.no_grad():
        layer.alpha.fill_(1.0)
        w_hat = layer.effective_weight().flatten(1)
    torch.testing.assert_close(w_hat.var(dim=1, correction=0), torch.full((8,), 2.0 / 54, dtype=F64))
    layer(x).sum().backward()
    assert torch.isfinite(layer.weight.grad).all() and torch.isfinite(layer.alpha.grad).all()


@pytest.mark.parametrize("c_in", [3, 64, 256, 512])
def test_scale_at_initialization(c_in):
    """The init is explicit: raw W ~ He normal (fan-in, ReLU gain), so Var[W_o] ~ 2/n, alpha = 1, beta = 0.

    Then std(W_hat_o) = s * sqrt(Var[W_o] / (Var[W_o] + gamma)) with s = sqrt(2/n): with the default
    gamma = 1e-3 the standardized kernel of a wide layer starts well below sqrt(2/n) -- about 0.99, 0.80,
    0.55 and 0.42 of it for n = 27, 576, 2304, 4608 (the paper's gamma at work; see its Table 2).
    ``reset_parameters`` (also what meta-device / FSDP initializers call) gives the same init.
    """
    gamma = 1e-3
    layer = PWSConv2d(c_in, 128, 3, padding=1, gamma=gamma)
    for reinit in (False, True):
        if reinit:
            layer.reset_parameters()
        n = c_in * 9
        s = math.sqrt(2.0 / n)
        raw = layer.weight.detach().to(F64).flatten(1)
        assert raw.std().item() == pytest.approx(s, rel=0.06)  # He normal, fan-in, ReLU gain
        torch.testing.assert_close(layer.alpha.detach(), torch.ones(128))
        torch.testing.assert_close(layer.bias.detach(), torch.zeros(128))
        w_hat = layer.effective_weight().detach().to(F64).flatten(1)
        raw_var = raw.var(dim=1, correction=0)
        # per filter, exactly (to float32 rounding)
        torch.testing.assert_close(
            w_hat.std(dim=1, correction=0), s * torch.sqrt(raw_var / (raw_var + gamma)), rtol=1e-4, atol=0
        )
        # and overall, against the formula with the He variance 2/n
        expected = s * math.sqrt((2.0 / n) / (2.0 / n + gamma))
        assert w_hat.std(correction=0).item() == pytest.approx(expected, rel=0.05)


BAD_ARGUMENTS = [
    ({"gamma": -1e-3}, r"gamma must be a finite number >= 0.*got -0\.001"),
    ({"gamma": float("nan")}, r"gamma must be a finite number >= 0.*got nan"),
    ({"gamma": float("inf")}, r"gamma must be a finite number >= 0"),
    ({"gamma": "1e-3"}, r"gamma must be a finite number >= 0.*got '1e-3'"),
    ({"gamma": None}, r"gamma must be a finite number >= 0"),
    ({"gamma_mode": "std"}, r"gamma_mode must be one of \('var', 'equiv'\), got 'std'"),
    ({"alpha_init": "zeros"}, r"alpha_init must be one of \('ones', 'data'\), got 'zeros'"),
    ({"alpha_init": "data", "learn_alpha": False}, r"alpha_init='data'.*learn_alpha=False"),
    ({"groups": 4}, r"groups=4 must be a positive divisor of in_channels=6 and out_channels=8"),
    ({"groups": 0}, r"groups=0 must be a positive divisor"),
    ({"groups": 3, "out_channels": 4}, r"groups=3 must be a positive divisor of .*out_channels=4"),
    ({"padding_mode": "mirror"}, r"padding_mode"),
]


@pytest.mark.parametrize("kwargs, match", BAD_ARGUMENTS)
def test_bad_arguments_raise_value_error(kwargs, match):
    args = {"in_channels": 6, "out_channels": 8, "kernel_size": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        PWSConv2d(**args)


def test_single_weight_filters_are_rejected():
    with pytest.raises(ValueError, match=r"n = 1 .* n >= 2"):
        PWSConv2d(4, 4, 1, groups=4)
    PWSConv2d(4, 4, 3, groups=4)  # depthwise 3x3: n = 9 is fine


def test_gamma_auto_is_the_papers_suggestion_per_layer() -> None:
    """gamma='auto' is the Conclusion's 0.1 * sqrt(n_l / 2), per layer (n_l = in_channels/groups * k * k)."""
    import math

    from pws.nn.methods import mmcv_cfgs
    from pws.nn.pws_conv import auto_gamma

    a, b = PWSConv2d(64, 8, 3, gamma="auto"), PWSConv2d(16, 8, 1, gamma="auto")
    assert a.standardization_gamma() == pytest.approx(0.1 * math.sqrt(64 * 9 / 2))
    assert b.standardization_gamma() == pytest.approx(0.1 * math.sqrt(16 / 2))
    assert auto_gamma(576) == pytest.approx(1.697056, rel=1e-6)
    assert "auto" in repr(a)
    assert mmcv_cfgs({"method": "pws", "gamma": "auto"})[0]["gamma"] == "auto"
    with pytest.raises(ValueError, match="auto"):
        PWSConv2d(4, 4, 3, gamma="automatic")
