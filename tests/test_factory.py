"""The factory: one entry point builds "conv + its normalization" for every method, with its options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf
from torch import nn

from pws.diagnostics.probe import VarianceProbe
from pws.models.vgg import vgg16_features
from pws.nn import METHODS, OUTPUT_NORMS, NormMethod, PWSConv2d, SwitchNorm2d, WNConv2d, as_method
from pws.nn.convert import convert
from pws.nn.factory import OPTIONS
from pws.nn.fold import fold, kernel_of
from pws.nn.group_norm import GroupNorm2d
from pws.nn.instance_norm import InstanceNorm2d
from pws.nn.methods import METHOD_TABLE, MMCV_NO_NORM, ReparametrizedConv, conv_kind, mmcv_cfgs

pytestmark = pytest.mark.usefixtures("single_thread")

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "norm"

EXPECTED = {  # method: (conv type, norm type or None)
    "none": (nn.Conv2d, None),
    "bn": (nn.Conv2d, nn.BatchNorm2d),
    "gn": (nn.Conv2d, GroupNorm2d),
    "in": (nn.Conv2d, InstanceNorm2d),  # PyTorch's, defined on a 1x1 map too
    "ln": (nn.Conv2d, nn.GroupNorm),
    "sn": (nn.Conv2d, SwitchNorm2d),
    "wn": (WNConv2d, None),
    "pws": (PWSConv2d, None),
}


def test_the_methods_of_the_paper():
    assert set(METHODS) == set(EXPECTED)
    assert set(OUTPUT_NORMS) == {"bn", "gn", "in", "ln", "sn"}


@pytest.mark.parametrize("method", METHODS)
def test_conv_norm_builds_the_method(method):
    conv_type, norm_type = EXPECTED[method]
    block = NormMethod(method).conv_norm(64, 128, 3, stride=2, padding=1)
    assert type(block.conv) is conv_type
    assert block.conv.stride == (2, 2) and block.conv.padding == (1, 1)
    assert (block.conv.bias is None) == (norm_type is not None)  # beta lives in the norm when there is one
    if norm_type is None:
        assert not hasattr(block, "norm") and len(block) == 1
        torch.testing.assert_close(block.conv.bias.detach(), torch.zeros(128))
    else:
        assert type(block.norm) is norm_type
    # He init of the raw conv weight: fan-in, ReLU gain
    assert block.conv.weight.std().item() == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.05)
    y = block(torch.randn(2, 64, 8, 8))
    assert y.shape == (2, 128, 4, 4) and torch.isfinite(y).all()


def test_norm_options_are_passed_through():
    gn = NormMethod("gn", num_groups=8, eps=1e-3).norm(64)
    assert gn.num_groups == 8 and gn.eps == 1e-3
    assert NormMethod("gn").norm(64).num_groups == 32  # the default
    assert NormMethod("gn").norm(16).num_groups == 16  # gcd(32, 16) for narrow layers
    assert NormMethod("gn", num_groups=32).norm(24).num_groups == 8
    ln = NormMethod("ln").norm(48)
    assert ln.num_groups == 1 and ln.affine  # LN over (C, H, W)
    inorm = NormMethod("in", eps=1e-4).norm(8)
    assert inorm.affine and inorm.eps == 1e-4
    bn = NormMethod("bn", momentum=0.01, eps=1e-3).norm(8)
    assert bn.momentum == 0.01 and bn.eps == 1e-3
    sn = NormMethod("sn", momentum=0.003, eps=1e-3).norm(8)
    assert sn.momentum == 0.003 and sn.eps == 1e-3
    assert isinstance(NormMethod("pws").norm(8), nn.Identity)


def test_conv_options_are_passed_through():
    conv = NormMethod(
        "pws", gamma=1e-4, fan_in_scale=False, learn_alpha=False, gamma_mode="equiv"
    ).conv(8, 16, (3, 1), groups=2)
    assert isinstance(conv, PWSConv2d)
    assert (conv.gamma, conv.fan_in_scale, conv.learn_alpha, conv.gamma_mode) == (1e-4, False, False, "equiv")
    assert conv.groups == 2 and conv.kernel_size == (3, 1) and "alpha" not in dict(conv.named_parameters())
    wn = NormMethod("wn", g_init=0.5).conv(8, 16, 3)
    torch.testing.assert_close(wn.g.detach(), torch.full((16,), 0.5))
    assert NormMethod("wn").conv(8, 16, 3).g.detach().eq(1).all()
    assert NormMethod("bn").conv(8, 16, 3, bias=True).bias is not None  # explicit bias wins


@pytest.mark.parametrize("config", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_norm_config_builds(config):
    node = yaml.safe_load(config.read_text())
    assert node["method"] == config.stem
    method = as_method(node)
    assert method.options == {**OPTIONS[config.stem], **{k: v for k, v in node.items() if k != "method"}}
    assert method.options == OPTIONS[config.stem]  # the configs state the defaults
    assert isinstance(as_method(OmegaConf.create(node)).conv(3, 8, 3), nn.Conv2d)


def test_configs_cover_every_method():
    assert {p.stem for p in CONFIGS.glob("*.yaml")} == set(METHODS)


def test_as_method_accepts_names_instances_and_mappings():
    m = NormMethod("gn", num_groups=4)
    assert as_method(m) is m
    assert as_method("bn").method == "bn"
    assert as_method({"method": "pws", "gamma": 1e-5}).options["gamma"] == 1e-5
    assert "NormMethod('pws', gamma=1e-05" in repr(as_method({"method": "pws", "gamma": 1e-5}))


@pytest.mark.parametrize("method", METHODS)
def test_vgg16_features_uses_the_factory(method):
    features = vgg16_features(NormMethod(method))
    convs = [m for m in features.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 13 and all(type(c) is EXPECTED[method][0] for c in convs)
    assert sum(p.numel() for c in convs for p in [c.weight]) == 14_710_464


BAD = [
    (lambda: NormMethod("batchnorm"), r"unknown normalization method 'batchnorm'; choose one of none, bn"),
    (lambda: NormMethod("gn", groups=8), r"unknown option\(s\) \['groups'\] for method 'gn'; allowed: num"),
    (lambda: NormMethod("none", eps=1e-5), r"unknown option\(s\) \['eps'\] for method 'none'; allowed: none"),
    (lambda: NormMethod("gn", num_groups=0), r"gn num_groups must be >= 1, got 0"),
    (lambda: NormMethod("pws", gamma=-1.0), r"PWS gamma must be a finite number >= 0"),
    (lambda: NormMethod("pws", gamma=float("nan")), r"PWS gamma must be a finite number >= 0"),
    (lambda: NormMethod("pws", gamma_mode="sqrt"), r"gamma_mode must be one of \('var', 'equiv'\)"),
    (lambda: NormMethod("pws", alpha_init="zero"), r"alpha_init must be one of \('ones', 'data'\)"),
    (lambda: NormMethod("pws", alpha_init="data", learn_alpha=False), r"learn_alpha=False"),
    (lambda: NormMethod("pws").conv(6, 8, 3, groups=4), r"groups=4 must be a positive divisor"),
    (lambda: NormMethod("wn").conv(6, 8, 3, groups=4), r"groups=4 must be a positive divisor"),
    (lambda: as_method({"gamma": 1e-3}), r"needs a 'method' key \(one of none, bn"),
]


@pytest.mark.parametrize("build, match", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_arguments_raise_value_error(build, match):
    with pytest.raises(ValueError, match=match):
        build()


# ---------------------------------------------------------------- a method is one entry of the table


def small_bn_net() -> nn.Module:
    """conv + BN + ReLU twice, then a conv: what convert() turns into any method."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 4, 1),
    )  # fmt: skip


def trained_a_little(model: nn.Module) -> nn.Module:
    """Two SGD steps, so that alpha, g, biases and running statistics are away from their init."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    for _ in range(2):
        opt.zero_grad()
        model(torch.randn(4, 3, 8, 8)).square().mean().backward()
        opt.step()
    return model


@pytest.mark.parametrize("name", list(METHOD_TABLE))
def test_a_method_is_one_entry_of_the_table(name):
    """Every entry is buildable by the factory, convertible, foldable, known to the probe and to mmcv."""
    entry = METHOD_TABLE[name]
    assert entry.name == name and tuple(METHOD_TABLE) == METHODS
    assert (name in OUTPUT_NORMS) == entry.normalizes_outputs
    assert OPTIONS[name] == dict(entry.options)

    # the factory
    method = NormMethod(name)
    assert method.entry is entry and method.options == dict(entry.options)
    block = method.conv_norm(3, 8, 3, padding=1)
    assert type(block.conv) is entry.conv_class
    assert hasattr(block, "norm") == entry.normalizes_outputs == (block.conv.bias is None)
    assert isinstance(method.norm(8), nn.Identity) != entry.normalizes_outputs
    assert block(torch.randn(2, 3, 8, 8)).shape == (2, 8, 8, 8)

    # convert: a BN model becomes the method
    model = convert(small_bn_net(), name)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 3
    if entry.normalizes_outputs:
        assert all(type(c) is nn.Conv2d for c in convs)
        norms = [type(m) for m in model if not isinstance(m, (nn.Conv2d, nn.ReLU))]
        assert norms == [type(method.norm(8))] * 2
    else:
        assert all(type(c) is entry.conv_class and c.bias is not None for c in convs)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())

    # fold: eval-mode outputs unchanged, no conv that computes its kernel left
    trained_a_little(model)
    folded = fold(model)
    assert not any(isinstance(m, ReparametrizedConv) for m in folded.modules())
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        expected = model.eval()(x)
        assert (folded(x) - expected).abs().max().item() <= 1e-5 * expected.abs().max().item()

    # the probe: the conv's kind and its kernel, asked of the layer
    assert conv_kind(block.conv) == entry.kind
    assert conv_kind(convs[0]) == (entry.kind if not entry.normalizes_outputs else "conv")
    probe = VarianceProbe(block, lr=1e-2)
    block.train()
    block(torch.randn(2, 3, 8, 8)).sum().backward()
    assert {row["kind"] for row in probe.step()} == {entry.kind}
    probe.detach()
    torch.testing.assert_close(
        nn.functional.conv2d(x, kernel_of(block.conv), block.conv.bias, padding=1), block.conv(x)
    )

    # mmcv: plain dicts naming registered layers, the options where the layers take them
    conv_cfg, norm_cfg = mmcv_cfgs(name)
    _, required = mmcv_cfgs(method, norm_required=True)
    assert mmcv_cfgs({"method": name}) == (conv_cfg, norm_cfg)
    assert json.loads(json.dumps([conv_cfg, norm_cfg, required])) == [conv_cfg, norm_cfg, required]
    assert conv_cfg["type"] == entry.mmcv_conv and entry.mmcv_conv in entry.mmcv_layers
    if entry.normalizes_outputs:
        assert conv_cfg == {"type": entry.mmcv_conv} and norm_cfg is not None and required == norm_cfg
        assert norm_cfg["type"] == entry.mmcv_norm
        assert {k: norm_cfg[k] for k in entry.options} == dict(entry.options)
    else:
        assert norm_cfg is None and required == {"type": MMCV_NO_NORM}
        assert conv_cfg == {"type": entry.mmcv_conv, **entry.options, "force_bias": True}


def test_mmcv_cfgs_carry_the_options_with_their_types():
    conv, norm = mmcv_cfgs(NormMethod("pws", gamma=0, gamma_mode="equiv"))
    assert conv == {"type": "PWS", "gamma": 0.0, "fan_in_scale": True, "learn_alpha": True,
                    "gamma_mode": "equiv", "alpha_init": "ones", "force_bias": True}
    assert type(conv["gamma"]) is float and norm is None
    assert mmcv_cfgs({"method": "gn", "num_groups": 8.0}) == (
        {"type": "HeConv"}, {"type": "GN2d", "num_groups": 8, "eps": 1e-5}
    )
    assert mmcv_cfgs("in")[1] == {"type": "IN2d", "eps": 1e-5, "affine": True}
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['gama'\] for method 'pws'"):
        mmcv_cfgs({"method": "pws", "gama": 1e-3})
    with pytest.raises(ValueError, match=r"unknown normalization method 'bnn'"):
        mmcv_cfgs("bnn")


def test_the_kernel_is_asked_of_the_layer():
    """PWS and WN answer ``effective_weight()`` (eq. 12; g V / ||V||); a plain conv convolves with weight."""
    pws, wn, plain = PWSConv2d(4, 6, 3), WNConv2d(4, 6, 3), nn.Conv2d(4, 6, 3)
    assert isinstance(pws, ReparametrizedConv) and isinstance(wn, ReparametrizedConv)
    assert not isinstance(plain, ReparametrizedConv)
    w = pws.weight.flatten(1)  # eq. (12), alpha = 1: sqrt(2/n) (W - E[W]) / sqrt(Var[W] + gamma), biased Var
    var = w.var(1, unbiased=False, keepdim=True)
    expected = (2 / w.shape[1]) ** 0.5 * (w - w.mean(1, keepdim=True)) / (var + pws.gamma).sqrt()
    torch.testing.assert_close(pws.effective_weight().flatten(1), expected)
    torch.testing.assert_close(wn.effective_weight(), wn.normalized_weight())
    assert kernel_of(plain) is plain.weight
    assert conv_kind(pws) == "pws" and conv_kind(wn) == "wn" and conv_kind(plain) == "conv"
    assert conv_kind(nn.Linear(2, 2)) == "conv"


@pytest.mark.parametrize("name", METHODS)
def test_a_method_round_trips_through_its_config(name: str) -> None:
    """``to_config`` holds every option (defaults included); ``from_config`` gives the same method back,
    and its mmcv configs are the method table's."""
    method = NormMethod(name, **({"gamma": 3e-4} if name == "pws" else {}))
    config = method.to_config()
    assert config == {"method": name, **OPTIONS[name], **({"gamma": 3e-4} if name == "pws" else {})}
    back = NormMethod.from_config(config)
    assert back.method == name and back.options == method.options and back.to_config() == config
    assert back.mmcv_cfgs() == mmcv_cfgs(config)
    assert back.mmcv_cfgs(norm_required=True) == mmcv_cfgs(config, norm_required=True)
    with pytest.raises(ValueError, match="gama"):
        NormMethod.from_config({**config, "gama": 1.0})
