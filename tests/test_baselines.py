"""The filter- and output-normalization baselines: Switchable Normalization, GroupNorm's grouping and WN
(g = 1), in float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_pws_conv import gradcheck_module, ref_conv

from pws.nn import SwitchNorm2d, WNConv2d
from pws.nn.group_norm import GroupNorm2d

pytestmark = pytest.mark.usefixtures("single_thread")

F64 = torch.float64
KINDS = {"in": 0, "ln": 1, "bn": 2}


def make_sn(channels: int, kind: str | None = None) -> SwitchNorm2d:
    """SN with a random affine; ``kind`` makes both mixtures one-hot on that statistic (softmax(-1e4) = 0)."""
    sn = SwitchNorm2d(channels, eps=1e-5, momentum=0.3).to(F64)
    with torch.no_grad():
        sn.weight.copy_(torch.rand(channels) + 0.5)
        sn.bias.normal_()
        if kind is not None:
            logits = torch.full((3,), -1e4, dtype=F64)
            logits[KINDS[kind]] = 0.0
            sn.mean_weight.copy_(logits)
            sn.var_weight.copy_(logits)
    return sn


def features(n: int = 4, c: int = 6) -> torch.Tensor:
    """Feature maps with per-sample and per-channel offsets and scales (so IN, LN and BN all differ)."""
    x = torch.randn(n, c, 5, 7, dtype=F64)
    return x * (torch.rand(n, c, 1, 1, dtype=F64) + 0.5) + torch.randn(n, 1, 1, 1, dtype=F64) + torch.randn(
        1, c, 1, 1, dtype=F64
    )


def test_sn_one_hot_equals_in_and_ln():
    x = features()
    sn_in, sn_ln = make_sn(6, "in"), make_sn(6, "ln")
    for mode in (True, False):  # IN and LN use the sample's statistics in both modes
        sn_in.train(mode)
        sn_ln.train(mode)
        expected_in = F.instance_norm(x, weight=sn_in.weight, bias=sn_in.bias, eps=1e-5)
        torch.testing.assert_close(sn_in(x), expected_in)
        torch.testing.assert_close(sn_ln(x), F.group_norm(x, 1, sn_ln.weight, sn_ln.bias, eps=1e-5))
    assert not torch.allclose(sn_in(x), sn_ln(x), atol=1e-3)


def test_sn_one_hot_equals_bn_with_running_statistics():
    sn = make_sn(6, "bn")
    bn = torch.nn.BatchNorm2d(6, eps=1e-5, momentum=0.3).to(F64)
    with torch.no_grad():
        bn.weight.copy_(sn.weight)
        bn.bias.copy_(sn.bias)
    for _ in range(3):
        x = features()
        torch.testing.assert_close(sn(x), bn(x))
    torch.testing.assert_close(sn.running_mean, bn.running_mean)
    torch.testing.assert_close(sn.running_var, bn.running_var)  # unbiased, like BN
    sn.eval()
    bn.eval()
    x = features(2)
    torch.testing.assert_close(sn(x), bn(x))


def test_sn_mixture_matches_an_explicit_reference():
    """Default logits (equal thirds) and random logits: the softmax mixtures of IN, LN, BN statistics."""
    x = features()
    for randomize_logits in (False, True):
        sn = make_sn(6)
        if randomize_logits:
            with torch.no_grad():
                sn.mean_weight.normal_()
                sn.var_weight.normal_()
        wm, wv = sn.mean_weight.softmax(0).detach(), sn.var_weight.softmax(0).detach()
        stats = {}
        for kind, dims in {"in": (2, 3), "ln": (1, 2, 3), "bn": (0, 2, 3)}.items():
            mean = x.mean(dim=dims, keepdim=True)
            stats[kind] = (mean, ((x - mean) ** 2).mean(dim=dims, keepdim=True))
        mean = sum(wm[i] * stats[k][0] for k, i in KINDS.items())
        var = sum(wv[i] * stats[k][1] for k, i in KINDS.items())
        expected = (x - mean) / torch.sqrt(var + 1e-5) * sn.weight.view(1, -1, 1, 1)
        expected = expected + sn.bias.view(1, -1, 1, 1)
        torch.testing.assert_close(sn(x), expected.detach())


@pytest.mark.parametrize("training", [True, False])
def test_sn_gradcheck(training):
    sn = make_sn(3)
    with torch.no_grad():
        sn.mean_weight.normal_()
        sn.var_weight.normal_()
        sn.running_var.uniform_(0.5, 2.0)
        sn.running_mean.normal_()
    sn.train(training)
    gradcheck_module(sn, features(3, 3)[:, :, :3, :4], ["weight", "bias", "mean_weight", "var_weight"])


def test_sn_rejects_non_4d_input():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        SwitchNorm2d(4)(torch.randn(2, 4, 5))


@pytest.mark.parametrize(("channels", "groups"), [(64, 32), (48, 16), (16, 16), (6, 2)])
def test_gn_groups_are_the_gcd_and_normalize_each_group(channels: int, groups: int):
    """GroupNorm2d with 32 groups asked: gcd(32, C) groups, each (channels of a group, H, W) of a sample
    normalized to mean 0 and variance 1 before the affine map (explicit reference)."""
    gn = GroupNorm2d(channels, num_groups=32).to(F64)
    with torch.no_grad():
        gn.weight.copy_(torch.rand(channels) + 0.5)
        gn.bias.normal_()
    assert gn.num_groups == groups
    x = features(c=channels)
    grouped = x.reshape(4, groups, -1)
    mean, var = grouped.mean(-1, keepdim=True), grouped.var(-1, unbiased=False, keepdim=True)
    reference = ((grouped - mean) / torch.sqrt(var + 1e-5)).reshape_as(x)
    torch.testing.assert_close(gn(x), reference * gn.weight.view(1, -1, 1, 1) + gn.bias.view(1, -1, 1, 1))


def test_wn_starts_with_unit_norm_filters():
    """The paper's "WN (g = 1)": ||W_hat_o|| = 1, not torch.nn.utils.weight_norm's g = ||V_o||."""
    conv = WNConv2d(16, 32, 3, padding=1)
    torch.testing.assert_close(conv.g.detach(), torch.ones(32))
    norms = conv.normalized_weight().detach().flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, torch.ones(32))
    raw_norms = conv.weight.detach().flatten(1).norm(dim=1)
    assert (raw_norms - 1).abs().min() > 0.05  # torch's weight_norm would start at these
    assert conv.weight.std().item() == pytest.approx((2 / 144) ** 0.5, rel=0.1)  # He init of V
    torch.testing.assert_close(conv.bias.detach(), torch.zeros(32))


def _ref_wn_kernel(conv: WNConv2d) -> torch.Tensor:
    v = conv.weight.detach().to(F64)
    out = torch.empty_like(v)
    for o in range(v.shape[0]):
        out[o] = conv.g[o].detach() * v[o] / torch.sqrt((v[o] ** 2).sum())
    return out


@pytest.mark.parametrize("groups", [1, 2])
def test_wn_forward_matches_float64_reference(groups):
    conv = WNConv2d(4, 6, (3, 2), stride=(1, 2), padding=1, dilation=(2, 1), groups=groups, dtype=F64)
    with torch.no_grad():
        conv.g.uniform_(0.5, 2.0)
        conv.bias.normal_()
    x = torch.randn(2, 4, 8, 9, dtype=F64)
    expected = ref_conv(x, _ref_wn_kernel(conv), conv.bias.detach(), (1, 2), 1, (2, 1), groups)
    torch.testing.assert_close(conv(x), expected, rtol=1e-10, atol=1e-12)


def test_wn_gradient_is_orthogonal_to_v():
    """W = g V / ||V|| is invariant to the scale of V, so <dL/dV_o, V_o> = 0 per filter."""
    conv = WNConv2d(4, 6, 3, dtype=F64)
    x = torch.randn(2, 4, 6, 6, dtype=F64)
    (conv(x).tanh() * torch.randn(2, 6, 4, 4, dtype=F64)).sum().backward()
    dots = (conv.weight.grad * conv.weight.detach()).flatten(1).sum(dim=1)
    assert dots.abs().max() < 1e-12 * conv.weight.grad.abs().max()
    assert conv.g.grad.abs().max() > 0


def test_wn_gradcheck():
    conv = WNConv2d(4, 4, (3, 2), padding=1, groups=2, dtype=F64)
    with torch.no_grad():
        conv.g.uniform_(0.5, 2.0)
    gradcheck_module(conv, torch.randn(1, 4, 4, 5, dtype=F64), ["weight", "g", "bias"])


def test_wn_bad_groups():
    with pytest.raises(ValueError, match=r"groups=4 must be a positive divisor of in_channels=6"):
        WNConv2d(6, 8, 3, groups=4)
