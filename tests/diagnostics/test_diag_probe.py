"""The variance probe: eq. (13) (PWS removes the shift exactly), eq. (14) on measured tensors, the shift at
initialization under a plain conv against PWS, correctness of every number against direct computation, and
that the probe never changes training."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from pws.diagnostics import ROW_COLUMNS, VarianceProbe
from pws.diagnostics.probe import conv_kind, input_stats, layer_gamma, output_stats, weight_grad_stats
from pws.diagnostics.ssd_like import SSDLike
from pws.nn import NormMethod, PWSConv2d, WNConv2d, convert


def make_det_batch():
    """Two 32x32 'images' (normalized scale) with VOC-like boxes and labels."""
    g = torch.Generator().manual_seed(1234)
    images = torch.randn(2, 3, 32, 32, generator=g) * 0.8 + 0.3
    targets = [
        {
            "boxes": torch.tensor([[0.05, 0.1, 0.3, 0.35], [0.5, 0.4, 0.95, 0.9]]),
            "labels": torch.tensor([3, 12]),
        },
        {"boxes": torch.tensor([[0.2, 0.2, 0.6, 0.7]]), "labels": torch.tensor([7])},
    ]
    return images, targets


@pytest.fixture
def det_batch():
    return make_det_batch()


def probe_rows(model: SSDLike, batch, lr: float = 1e-2) -> list[dict]:
    """One forward + backward on ``batch`` with the probe on the backbone; the update is not applied."""
    images, targets = batch
    probe = VarianceProbe(model.backbone, lr=lr)
    model.zero_grad(set_to_none=True)
    model.loss(images, targets).backward()
    rows = probe.step()
    probe.detach()
    return rows


@pytest.fixture(scope="module")
def shift_rows():
    """Probe rows of a standard SSD-like VGG-16 and of the same network with every backbone conv turned
    into PWS (same raw weights), on the same batch at initialization."""
    torch.manual_seed(0)
    plain = SSDLike("none").train()
    pws = copy.deepcopy(plain)
    pws.backbone = convert(pws.backbone, "pws", gamma=1e-3)
    assert sum(isinstance(m, PWSConv2d) for m in pws.backbone.modules()) == 13
    batch = make_det_batch()
    return probe_rows(plain, batch), probe_rows(pws, batch)


def test_pws_removes_the_shift_exactly_eq13(shift_rows):
    rows_plain, rows_pws = shift_rows
    assert len(rows_pws) == 13
    for rp, rw in zip(rows_plain, rows_pws, strict=True):
        assert rw["kind"] == "pws" and rp["kind"] == "conv"
        # shift_rel = Var_o[n E[dW_o]] / mean_o[n^2 E[dW_o^2]]: 0 when every filter's update has mean 0
        assert rw["shift_rel"] < 1e-10, rw
        assert rp["shift_rel"] > 1e-3, rp
        assert math.isfinite(rw["shift"]) and rw["shift"] >= 0


def test_shift_at_initialization_plain_far_above_pws(shift_rows):
    rows_plain, rows_pws = shift_rows
    for rp, rw in zip(rows_plain, rows_pws, strict=True):
        assert rp["shift"] > 1e6 * max(rw["shift"], 1e-300), (rp["layer"], rp["shift"], rw["shift"])


@pytest.mark.parametrize("method", ["none", "bn", "pws"])
def test_eq14_holds_on_measured_tensors(method, det_batch):
    rows = probe_rows(SSDLike(method).train(), det_batch)
    for r in rows:
        # Var[Y_l] = mean_o Var[Y_o,l] + Var_o[E[Y_o,l]]: measured directly vs from per-channel moments
        assert r["var_y_eq14"] == pytest.approx(r["var_y"], rel=2e-5), r
        assert r["var_y_within"] > 0 and r["var_y_between"] >= 0
        # eq. (5) columns are what the probe documents
        assert r["var_y_pred"] == pytest.approx(2 * r["x_sq"] * r["transmit"] + r["mean_term"], rel=1e-12)
    assert math.isnan(rows[0]["var_y_prev"]) and rows[1]["var_y_prev"] == rows[0]["var_y"]


def test_eq14_identity_against_float64():
    y = torch.randn(3, 16, 5, 7) * torch.linspace(0.1, 3, 16).view(1, -1, 1, 1) + torch.randn(1, 16, 1, 1) * 4
    s = output_stats(y)
    yd = y.double()
    assert s["var_y"] == pytest.approx(float(yd.var(correction=0)), rel=1e-6)
    within = float(yd.var(dim=(0, 2, 3), correction=0).mean())
    between = float(yd.mean(dim=(0, 2, 3)).var(correction=0))
    assert s["var_y_within"] == pytest.approx(within, rel=1e-6)
    assert s["var_y_between"] == pytest.approx(between, rel=1e-6)
    assert within + between == pytest.approx(float(yd.var(correction=0)), rel=1e-12)


def test_weight_and_input_numbers_match_their_definitions():
    w, g, lr, gamma = torch.randn(8, 3, 3, 3) * 0.2 + 0.05, torch.randn(8, 3, 3, 3), 0.1, 1e-3
    s = weight_grad_stats(w, g, lr, gamma)
    wd, dwd = w.double().flatten(1), (lr * g.double()).flatten(1)
    n = wd.shape[1]
    ratio = (wd - dwd).var(dim=1, correction=0) / wd.var(dim=1, correction=0)
    assert s["var_ratio_mean"] == pytest.approx(float(ratio.mean()), rel=1e-5)
    assert s["var_ratio_min"] == pytest.approx(float(ratio.min()), rel=1e-5)
    assert s["var_ratio_max"] == pytest.approx(float(ratio.max()), rel=1e-5)
    assert s["shift"] == pytest.approx(float((n * dwd.mean(dim=1)).var(correction=0)), rel=1e-5)
    wvar_min = float(wd.var(dim=1, correction=0).min())
    assert s["wvar_min"] == pytest.approx(wvar_min, rel=1e-5)
    assert s["inv_std_max"] == pytest.approx(1 / math.sqrt(wvar_min + gamma), rel=1e-5)

    x = torch.relu(torch.randn(5, 4, 6, 6) + torch.arange(5.0).view(-1, 1, 1, 1) * 0.3)
    xs = input_stats(x)
    m = x.double().flatten(1).mean(1)
    sq = x.double().flatten(1).pow(2).mean(1)
    assert xs["x_mean_min"] == pytest.approx(float(m.min()), rel=1e-6)
    assert xs["x_mean_max"] == pytest.approx(float(m.max()), rel=1e-6)
    assert xs["x_sq_max"] == pytest.approx(float(sq.max()), rel=1e-6)
    assert xs["x_ratio_min"] == pytest.approx(float((m * m / sq).min()), rel=1e-5)
    assert xs["x_mean2_max"] == pytest.approx(float((m * m).max()), rel=1e-6)
    assert xs["samples"] == 5


def test_pws_layer_gamma_and_figure2_numbers():
    conv = PWSConv2d(8, 16, 3, gamma=1e-4, gamma_mode="equiv")
    model = nn.Sequential(conv, nn.ReLU(), nn.Conv2d(16, 4, 1))
    probe = VarianceProbe(model, lr=0.5, activations=False)
    model(torch.randn(2, 8, 6, 6)).square().mean().backward()
    pws_row, plain_row = probe.step()
    assert pws_row["gamma"] == pytest.approx(2 * 1e-4 / conv.fan_in)  # equiv: gamma <- 2 gamma / n
    assert plain_row["gamma"] == 0.0 and plain_row["kind"] == "conv"
    var_min = float(conv.weight.detach().double().flatten(1).var(dim=1, correction=0).min())
    assert pws_row["inv_std_max"] == pytest.approx(1 / math.sqrt(var_min + pws_row["gamma"]), rel=1e-5)
    assert math.isnan(pws_row["var_y"])  # activations=False records no forward numbers
    assert set(pws_row) == set(ROW_COLUMNS)


def test_layer_gamma_and_kind_are_asked_of_the_layer():
    """The probe asks the layer (``standardization_gamma()``, the method table's kind), not its class name."""
    pws, wn, plain = PWSConv2d(8, 16, 3, gamma=1e-4), WNConv2d(16, 16, 3), nn.Conv2d(8, 16, 3)
    assert layer_gamma(pws, default=0.5) == pws.standardization_gamma() == 1e-4
    assert layer_gamma(wn, default=0.5) == layer_gamma(plain, default=0.5) == 0.5
    assert [conv_kind(c) for c in (pws, wn, plain)] == ["pws", "wn", "conv"]
    model = nn.Sequential(pws, nn.ReLU(), wn, nn.ReLU(), nn.Conv2d(16, 4, 1))
    probe = VarianceProbe(model, lr=1e-2, default_gamma=0.5)
    model(torch.randn(2, 8, 9, 9)).square().mean().backward()
    rows = probe.step()
    assert [r["kind"] for r in rows] == ["pws", "wn", "conv"]
    assert [r["gamma"] for r in rows] == [1e-4, 0.5, 0.5]


def test_eq5_iid_prediction_matches_a_1x1_conv_on_independent_inputs():
    """For inputs with independent elements the decomposition behind eq. (5) is exact up to sampling."""
    conv = NormMethod("none").conv(256, 128, 1)
    probe = VarianceProbe(nn.Sequential(conv), lr=0.0)
    conv(torch.relu(torch.randn(64, 256, 8, 8)))
    (row,) = probe.step()
    assert row["var_y_pred_iid"] == pytest.approx(row["var_y"], rel=0.03)
    # the paper's eq. (5) counts the filter-mean spread twice at initialization (documented finding)
    assert row["var_y_pred"] > row["var_y_pred_iid"]


def _train(with_probe: bool, steps: int = 3) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    torch.manual_seed(7)
    model = nn.Sequential(
        PWSConv2d(3, 8, 3, padding=1, gamma=1e-3), nn.ReLU(inplace=True),
        NormMethod("bn").conv_norm(8, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Dropout(0.3),
        NormMethod("none").conv(8, 8, 3, padding=1), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5),
    )  # fmt: skip
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    probe = VarianceProbe(model, lr=0.1) if with_probe else None
    for _ in range(steps):
        x, t = torch.randn(4, 3, 8, 8), torch.randint(0, 5, (4,))
        loss = nn.functional.cross_entropy(model(x), t)
        optimizer.zero_grad()
        loss.backward()
        if probe is not None:
            assert len(probe.step()) == 3
        optimizer.step()
    if probe is not None:
        probe.detach()
        assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    return copy.deepcopy(model.state_dict()), torch.get_rng_state()


def test_probe_leaves_training_unchanged():
    state_a, rng_a = _train(with_probe=False)
    state_b, rng_b = _train(with_probe=True)
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key
    assert torch.equal(rng_a, rng_b)  # the probe draws no random numbers


def test_layer_selection_and_errors():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))
    probe = VarianceProbe(model, lr=1.0, layers=["2"])
    assert [(i, name) for i, name, _ in probe.layers] == [(2, "2")]
    probe.detach()
    with pytest.raises(ValueError, match="not found"):
        VarianceProbe(model, lr=1.0, layers=[7])
    with pytest.raises(ValueError, match=r"no nn\.Conv2d"):
        VarianceProbe(nn.Linear(3, 3), lr=1.0)


def test_eval_forwards_are_ignored_and_missing_numbers_are_nan():
    model = nn.Sequential(nn.Conv2d(3, 4, 3))
    probe = VarianceProbe(model, lr=1.0)
    with torch.no_grad():
        model.eval()(torch.randn(1, 3, 5, 5))
    (row,) = probe.step()
    assert math.isnan(row["var_y"]) and math.isnan(row["shift"])


@pytest.mark.parametrize("kind", ["pws", "conv"])
def test_eq5_columns_equal_an_independent_computation(kind):
    """eq. (5)'s pieces on a fixed kernel and input, computed here from the paper's formulas in float64:
    ``transmit = mean_o(n Var[K_o] / 2)``, ``mean_term = Var_o[n E[K_o] E[X] + b_o]``,
    ``var_y_pred = 2 E[X^2] transmit + mean_term``, with ``K_o`` the kernel of eq. (12) for PWS,
    ``alpha_o sqrt(2/n) (W_o - E[W_o]) / sqrt(Var[W_o] + gamma)``, and the weight for a plain conv."""
    gamma = 1e-3
    ramp = torch.linspace(-0.6, 0.9, 3 * 2 * 3 * 3).reshape(3, 2, 3, 3)
    weight = ramp**3 + 0.02 * torch.arange(3.0).view(-1, 1, 1, 1)  # filters of different mean and variance
    bias = torch.tensor([0.1, -0.2, 0.3])
    alpha = torch.tensor([0.5, 1.0, 2.0])
    x = (torch.arange(2 * 2 * 5 * 5.0).reshape(2, 2, 5, 5) % 7) / 3 - 0.5  # E[X] != 0
    if kind == "pws":
        conv = PWSConv2d(2, 3, 3, padding=1, gamma=gamma)
        with torch.no_grad():
            conv.alpha.copy_(alpha)
    else:
        conv = nn.Conv2d(2, 3, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
    probe = VarianceProbe(nn.Sequential(conv), lr=0.0)
    conv(x)
    (row,) = probe.step()

    w, b, xd = weight.double().flatten(1), bias.double(), x.double()
    n = w.shape[1]
    assert n == 18
    if kind == "pws":
        mean_w, var_w = w.mean(dim=1, keepdim=True), w.var(dim=1, correction=0, keepdim=True)
        k = alpha.double().view(-1, 1) * math.sqrt(2 / n) * (w - mean_w) / torch.sqrt(var_w + gamma)
    else:
        k = w
    transmit = float((n * k.var(dim=1, correction=0) / 2).mean())
    mean_term = float((n * k.mean(dim=1) * xd.mean() + b).var(correction=0))
    var_y_pred = 2 * float(xd.pow(2).mean()) * transmit + mean_term
    assert transmit > 0.1 and mean_term > 1e-3
    assert row["transmit"] == pytest.approx(transmit, rel=1e-6)
    # (E[K_o] of PWS is 0 only up to float32 rounding, ~1e-8: a relative 1e-6 of mean_term)
    assert row["mean_term"] == pytest.approx(mean_term, rel=1e-5)
    assert row["var_y_pred"] == pytest.approx(var_y_pred, rel=1e-5)
    assert row["x_mean"] == pytest.approx(float(xd.mean()), rel=1e-6)
    # and the kernel above is the one the layer convolves with: the measured Var[Y] is that of conv(X, K) + b
    y = torch.nn.functional.conv2d(xd, k.view(3, 2, 3, 3), b, padding=1)
    assert row["var_y"] == pytest.approx(float(y.var(correction=0)), rel=1e-5)
