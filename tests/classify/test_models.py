"""The classification networks (Tables 4 and 5): every model x every method builds and trains one step."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pws.models.classifiers import CLASSIFIERS, build_classifier, classifier_options
from pws.models.resnet_cifar import PreAct
from pws.nn import METHODS, OUTPUT_NORMS, NormMethod, PWSConv2d, SwitchNorm2d, WNConv2d

INPUT_SIZE = {"plain_c": 32, "resnet_cifar": 32, "resnet50": 64}  # resnet50: 224 at full scale
NO_OUTPUT_NORM = [m for m in METHODS if m not in OUTPUT_NORMS]  # none, wn, pws
NORM_TYPES = (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d, nn.LayerNorm, SwitchNorm2d)


def method_of(name: str) -> NormMethod:
    return NormMethod(name, gamma=1e-3) if name == "pws" else NormMethod(name)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("model", sorted(CLASSIFIERS))
def test_every_model_and_method_trains_one_step(model: str, method: str) -> None:
    """Builds, takes one SGD step with a finite loss; every conv and norm is the method's."""
    net = build_classifier(model, method_of(method), num_classes=10)
    size = INPUT_SIZE[model]
    x, y = torch.randn(2, 3, size, size), torch.tensor([3, 7])
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    before = [p.detach().clone() for p in net.parameters()]

    logits = net(x)
    assert logits.shape == (2, 10)
    loss = F.cross_entropy(logits, y)
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()

    after = list(net.parameters())
    assert all(torch.isfinite(p).all() for p in after)
    assert sum(not torch.equal(a, b) for a, b in zip(before, after, strict=True)) > len(before) // 2
    assert torch.isfinite(net(x)).all()

    # every conv and norm comes from the factory
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    expected = {"pws": PWSConv2d, "wn": WNConv2d}.get(method, nn.Conv2d)
    assert convs and all(type(c) is expected for c in convs)
    norm_types = {type(m) for m in net.modules() if isinstance(m, NORM_TYPES)}
    if method in NO_OUTPUT_NORM:  # only resnet50's two LayerNorms (GroupNorm with one group)
        assert norm_types == ({nn.GroupNorm} if model == "resnet50" else set())
    else:
        assert norm_types == {type(NormMethod(method).norm(64))}


@pytest.mark.parametrize("method", NO_OUTPUT_NORM)
def test_resnet50_without_output_norm_has_ln_at_input_and_output_only(method: str) -> None:
    net = build_classifier("resnet50", method_of(method), num_classes=1000)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
    norms = [(n, m) for n, m in net.named_modules() if isinstance(m, nn.GroupNorm)]
    assert [n for n, _ in norms] == ["bn1", "layer4.2.out_norm"]
    assert all(m.num_groups == 1 for _, m in norms)
    assert [m.num_channels for _, m in norms] == [64, 2048]
    assert sum(isinstance(m, nn.Conv2d) for m in net.modules()) == 53
    # the output LN sits before the final ReLU: the features are the ReLU of a zero-mean, unit-variance map
    feats = {}
    net.layer4[-1].out_norm.register_forward_hook(lambda mod, inp, out: feats.update(out=out.clone()))
    net(torch.randn(2, 3, 64, 64))
    per_sample = feats["out"].flatten(1)
    torch.testing.assert_close(per_sample.mean(1), torch.zeros(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(per_sample.var(1, unbiased=False), torch.ones(2), atol=1e-3, rtol=0)


def test_resnet50_with_bn_is_torchvision_resnet50() -> None:
    import torchvision

    ours = build_classifier("resnet50", NormMethod("bn"), num_classes=1000)
    reference = torchvision.models.resnet50()
    ours.load_state_dict(reference.state_dict())  # strict: same names and shapes
    assert sum(isinstance(m, nn.BatchNorm2d) for m in ours.modules()) == 53
    assert not any(isinstance(m, nn.GroupNorm) for m in ours.modules())
    ours.eval(), reference.eval()
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(ours(x), reference(x), atol=1e-4, rtol=1e-4)


def test_resnet50_io_norm_option() -> None:
    plain = build_classifier("resnet50", NormMethod("pws"), num_classes=10, io_norm=False)
    assert not any(isinstance(m, nn.GroupNorm) for m in plain.modules())
    bn_ln = build_classifier("resnet50", NormMethod("bn"), num_classes=10, io_norm=True)
    assert isinstance(bn_ln.bn1, nn.BatchNorm2d) and isinstance(bn_ln.layer4[-1].out_norm, nn.GroupNorm)


def test_plain_c_layout() -> None:
    net = build_classifier("plain_c", NormMethod("bn"), num_classes=10)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [96] * 3 + [192] * 6 + [10]
    assert [c.kernel_size[0] for c in convs] == [3] * 7 + [1] * 3
    assert [c.padding[0] for c in convs] == [1] * 6 + [0] * 4  # conv 7 is the "valid" 3x3
    assert sum(isinstance(m, nn.MaxPool2d) for m in net.modules()) == 2
    assert not any(isinstance(m, nn.Dropout) for m in net.modules())
    assert net.features(torch.randn(1, 3, 32, 32)).shape == (1, 192, 6, 6)
    assert convs[-1].bias is not None and all(c.bias is None for c in convs[:-1])  # bias-free before BN


def test_resnet_cifar_layout() -> None:
    net = build_classifier("resnet_cifar", NormMethod("bn"), num_classes=10)
    assert net.depth == 56
    units = [*net.stage1, *net.stage2, *net.stage3]
    assert len(units) == 18
    assert [u.conv2.conv.stride[0] for u in units] == [1] * 5 + [2] + [1] * 5 + [2] + [1] * 6
    assert [u.conv3.out_channels for u in units] == [64] * 6 + [128] * 6 + [256] * 6
    assert [u.conv1.conv.out_channels for u in units] == [16] * 6 + [32] * 6 + [64] * 6
    assert [i for i, u in enumerate(units) if u.shortcut is not None] == [6, 12]  # projections
    x = net.stem(torch.randn(1, 3, 32, 32))
    shapes = []
    for stage in (net.stage1, net.stage2, net.stage3):
        x = stage(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [(64, 16, 16), (128, 8, 8), (256, 8, 8)]
    small = build_classifier("resnet_cifar", NormMethod("bn"), num_classes=10, units_per_stage=2)
    assert small.depth == 20


@pytest.mark.parametrize("method", METHODS)
def test_resnet_cifar_preactivation(method: str) -> None:
    net = build_classifier("resnet_cifar", method_of(method), num_classes=10)
    scales = {m.scale for m in net.modules() if isinstance(m, PreAct)}
    assert scales == ({1.0} if method in OUTPUT_NORMS else {1 / math.sqrt(2)})
    preact = net.stage2[0].preact
    x = torch.randn(2, 64, 8, 8)
    if method in OUTPUT_NORMS:
        torch.testing.assert_close(preact(x), F.relu(preact.norm(x)))
    else:
        torch.testing.assert_close(preact(x), F.relu(x / math.sqrt(2)))


def test_kwargs_and_errors() -> None:
    assert classifier_options("plain_c") == {"in_channels": 3, "width": 1.0}
    assert set(classifier_options("resnet_cifar")) == {"in_channels", "units_per_stage", "preact_scale"}
    assert classifier_options("resnet50") == {"in_channels": 3, "io_norm": None}
    grey = build_classifier("plain_c", "bn", num_classes=5, in_channels=1, width=0.25)
    assert grey(torch.randn(2, 1, 32, 32)).shape == (2, 5)
    assert build_classifier("resnet_cifar", {"method": "pws", "gamma": 1e-4}, 3, units_per_stage=1)
    with pytest.raises(ValueError, match="unknown model 'vgg'; choose one of plain_c, resnet_cifar, resnet"):
        build_classifier("vgg", NormMethod("bn"), 10)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['depth'\] for model 'resnet50'"):
        build_classifier("resnet50", NormMethod("bn"), 10, depth=101)
    with pytest.raises(ValueError, match="num_classes"):
        build_classifier("plain_c", NormMethod("bn"), 0)
