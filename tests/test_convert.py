"""convert(): a torchvision model's Conv2d + BatchNorm2d pairs become the chosen method."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from pws.nn import PWSConv2d, SwitchNorm2d, WNConv2d, convert
from pws.nn.group_norm import GroupNorm2d
from pws.nn.instance_norm import InstanceNorm2d
from pws.optim import param_groups

pytestmark = pytest.mark.usefixtures("single_thread")


def resnet18() -> nn.Module:
    return torchvision.models.resnet18(weights=None, num_classes=10)


def test_convert_resnet18_to_pws_removes_bn_and_trains_a_step():
    model = resnet18()
    raw = {name: m.weight.detach().clone() for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    assert convert(model, "pws", gamma=1e-4) is model
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    convs = {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    assert set(convs) == set(raw) and len(convs) == 20
    for name, conv in convs.items():
        assert isinstance(conv, PWSConv2d) and conv.gamma == 1e-4 and conv.bias is not None
        torch.testing.assert_close(conv.weight.detach(), raw[name])  # raw W kept; standardized in forward
    assert model.conv1.stride == (2, 2) and model.conv1.padding == (3, 3)
    assert model.layer2[0].downsample[0].kernel_size == (1, 1)

    opt = torch.optim.SGD(param_groups(model, 5e-4), lr=0.05, momentum=0.9)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    loss = nn.functional.cross_entropy(model(x), y)
    assert torch.isfinite(loss)
    opt.zero_grad()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    opt.step()
    changed = [n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert "conv1.alpha" in changed and "fc.weight" in changed and "layer4.1.conv2.weight" in changed
    assert torch.isfinite(nn.functional.cross_entropy(model(x), y))


@pytest.mark.parametrize("method, conv_type", [("wn", WNConv2d), ("none", nn.Conv2d)])
def test_convert_to_filter_methods_removes_bn(method, conv_type):
    model = convert(resnet18(), method)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 20 and all(type(m) is conv_type and m.bias is not None for m in convs)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize(
    "method, options, norm_type",
    [("gn", {"num_groups": 16}, GroupNorm2d), ("ln", {}, nn.GroupNorm), ("sn", {}, SwitchNorm2d),
     ("in", {}, InstanceNorm2d), ("bn", {}, nn.BatchNorm2d)],
)
def test_convert_to_output_norms_replaces_each_bn(method, options, norm_type):
    model = resnet18()
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    convert(model, method, **options)
    norms = [m for m in model.modules() if type(m) is norm_type]
    assert len(norms) == n_bn == 20
    assert all(type(m) is nn.Conv2d and m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))
    if method == "gn":
        assert {m.num_groups for m in norms} == {16}
    if method == "ln":
        assert {m.num_groups for m in norms} == {1}
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)


def test_convert_without_keep_weights_reinitializes():
    model = resnet18()
    raw = model.conv1.weight.detach().clone()
    convert(model, "pws", keep_weights=False)
    assert not torch.equal(model.conv1.weight.detach(), raw)
    assert model.conv1.weight.std().item() == pytest.approx((2 / 147) ** 0.5, rel=0.1)  # He init


def test_convert_bad_arguments():
    with pytest.raises(ValueError, match=r"unknown normalization method 'bnn'; choose one of none, bn"):
        convert(resnet18(), "bnn")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['gama'\] for method 'pws'; allowed: gamma"):
        convert(resnet18(), "pws", gama=1e-3)


def test_convert_a_single_layer_returns_the_converted_layer():
    conv = nn.Conv2d(3, 4, 3, bias=False)
    new = convert(conv, "pws")
    assert isinstance(new, PWSConv2d) and new.bias is not None
    torch.testing.assert_close(new.weight.detach(), conv.weight.detach())
    assert isinstance(convert(nn.BatchNorm2d(4), "gn", num_groups=2), nn.GroupNorm)
