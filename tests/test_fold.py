"""fold(): PWS / WN convs and conv + eval-mode BN become plain convs with the same eval-mode outputs."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from pws.models.vgg import vgg16_features
from pws.nn import NormMethod, PWSConv2d, WNConv2d, convert, fold

pytestmark = pytest.mark.usefixtures("single_thread")

FOLDING_METHODS = ["pws", "wn", "bn", "none"]


def perturb(model: nn.Module) -> nn.Module:
    """Move every parameter and BN statistic away from its init, so that folding has something to fold."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, PWSConv2d):
                module.alpha.uniform_(0.5, 1.5)
            if isinstance(module, WNConv2d):
                module.g.uniform_(0.5, 1.5)
            if isinstance(module, nn.Conv2d) and module.bias is not None:
                module.bias.normal_(0, 0.1)
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
        model.train()
        for _ in range(2):  # BN running statistics from real batches
            model(torch.randn(3, 3, 16, 16))
    return model


def vgg_like(method: str) -> nn.Module:
    return nn.Sequential(vgg16_features(NormMethod(method)), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(512, 10))


def resnet_like(method: str) -> nn.Module:
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    return model if method == "bn" else convert(model, method)


def assert_same_outputs(a: torch.Tensor, b: torch.Tensor) -> None:
    """Equal to float32 rounding, relative to the output's scale (deep nets without a norm grow it)."""
    assert a.shape == b.shape
    assert (a - b).abs().max().item() <= 1e-5 * b.abs().max().item()


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
@pytest.mark.parametrize("build", [vgg_like, resnet_like], ids=["vgg16", "resnet18"])
@pytest.mark.parametrize("method", FOLDING_METHODS)
def test_fold_matches_eval_and_leaves_plain_convs(build, method):
    model = perturb(build(method))
    folded = fold(model)
    kinds = {type(m) for m in folded.modules()}
    assert PWSConv2d not in kinds and WNConv2d not in kinds and nn.BatchNorm2d not in kinds
    assert nn.Conv2d in kinds
    # the original is untouched (same kinds of layers, still in training mode)
    assert model.training and any(isinstance(m, (PWSConv2d, WNConv2d, nn.BatchNorm2d, nn.Conv2d))
                                  for m in model.modules())
    if method == "pws":
        assert any(isinstance(m, PWSConv2d) for m in model.modules())
    x = torch.randn(2, 3, 16, 16)
    model.eval()
    with torch.no_grad():
        expected = model(x)
        assert_same_outputs(folded(x), expected)
        scripted = torch.jit.script(folded)  # deprecated in torch 2.14 but still supported: both work
        assert_same_outputs(scripted(x), expected)


@pytest.mark.parametrize("build", [vgg_like, resnet_like], ids=["vgg16", "resnet18"])
def test_folded_pws_model_exports(build):
    model = perturb(build("pws"))
    x = torch.randn(2, 3, 16, 16)
    exported = torch.export.export(fold(model), (x,))
    with torch.no_grad():
        assert_same_outputs(exported.module()(x), model.eval()(x))


def test_fold_keeps_bns_it_cannot_fold():
    """A BN without running statistics, or whose conv output is read elsewhere, is left as it is."""

    class TwoReaders(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.bn = nn.BatchNorm2d(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return self.bn(y) + y

    batch_stats = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, track_running_stats=False))
    x = torch.randn(2, 3, 16, 16)
    for model in (perturb(TwoReaders()), batch_stats):
        folded = fold(model)
        assert sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules()) == 1
        with torch.no_grad():
            assert_same_outputs(folded(x), model.eval()(x))


def test_fold_keeps_the_bias_of_a_conv_before_bn():
    """``b' = (b - mu) * s + beta``: the conv's own bias goes through BN's scale, not dropped."""
    model = perturb(nn.Sequential(nn.Conv2d(3, 4, 3, bias=True), nn.BatchNorm2d(4)))
    with torch.no_grad():
        model[0].bias.copy_(torch.tensor([1.0, -2.0, 0.5, 3.0]))
    folded = fold(model)
    assert isinstance(folded[1], nn.Identity) and folded[0].bias is not None
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert_same_outputs(folded(x), model.eval()(x))
        bn = model[1]
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        expected_bias = (model[0].bias - bn.running_mean) * scale + bn.bias
        torch.testing.assert_close(folded[0].bias, expected_bias)


@pytest.mark.parametrize("layer", [PWSConv2d, WNConv2d])
def test_fold_a_single_layer(layer):
    conv = perturb(layer(3, 4, 3, padding=1, groups=1))
    folded = fold(conv)
    assert type(folded) is nn.Conv2d and not folded.training and conv.training
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        assert_same_outputs(folded(x), conv.eval()(x))
