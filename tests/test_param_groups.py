"""param_groups(): every PWS alpha, and nothing else, gets weight decay 0, in torch and in mmengine's rule."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from pws.models.vgg import vgg16_features
from pws.nn import NormMethod, PWSConv2d, convert
from pws.optim import mmengine_paramwise_cfg, no_decay_parameters, param_groups

pytestmark = pytest.mark.usefixtures("single_thread")


class Mixed(nn.Module):
    """Every kind of parameter of the project: PWS (trainable and fixed alpha), WN, BN, GN, SN, plain conv."""

    def __init__(self) -> None:
        super().__init__()
        self.pws = NormMethod("pws").conv_norm(3, 8, 3, padding=1)
        self.fixed = NormMethod("pws", learn_alpha=False).conv_norm(8, 8, 3, padding=1)
        self.shared = PWSConv2d(8, 8, 3, padding=1)  # called twice: its alpha must be listed once
        self.wn = NormMethod("wn").conv_norm(8, 8, 3, padding=1)
        self.bn = NormMethod("bn").conv_norm(8, 8, 3, padding=1)
        self.gn = NormMethod("gn", num_groups=4).conv_norm(8, 8, 3, padding=1)
        self.sn = NormMethod("sn").conv_norm(8, 8, 3, padding=1)
        self.plain = NormMethod("none").conv_norm(8, 8, 1)
        self.head = nn.Linear(8, 3)
        self.frozen = nn.Conv2d(8, 8, 1)
        self.frozen.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fixed(self.pws(x))
        x = self.shared(self.shared(x))
        x = self.plain(self.sn(self.gn(self.bn(self.wn(x)))))
        return self.head(self.frozen(x).mean(dim=(2, 3)))


def alphas(model: nn.Module) -> set[int]:
    return {id(m.alpha) for m in model.modules() if isinstance(m, PWSConv2d) and m.alpha.requires_grad}


def mmengine_decay(model: nn.Module, base_wd: float) -> dict[int, float]:
    """mmengine's ``DefaultOptimWrapperConstructor.add_params`` rule for ``custom_keys``.

    A key matches when it is a substring of ``f"{prefix}.{name}"`` (longest key first), ``prefix`` being the
    module path.
    """
    keys = mmengine_paramwise_cfg()["custom_keys"]
    decay: dict[int, float] = {}
    for prefix, module in model.named_modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in decay:
                continue
            wd = base_wd
            for key in sorted(sorted(keys), key=len, reverse=True):
                if key in f"{prefix}.{name}":
                    wd = base_wd * keys[key].get("decay_mult", 1.0)
                    break
            decay[id(p)] = wd
    return decay


MODELS = {
    "mixed": Mixed,
    "vgg16-pws": lambda: vgg16_features(NormMethod("pws")),
    "resnet18-pws": lambda: convert(torchvision.models.resnet18(weights=None), "pws"),
    "alpha-at-the-root": lambda: PWSConv2d(3, 4, 3),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_only_alpha_has_no_weight_decay(name):
    model = MODELS[name]()
    groups = param_groups(model, weight_decay=5e-4)
    listed = [id(p) for g in groups for p in g["params"]]
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert len(listed) == len(set(listed)) and set(listed) == trainable  # every trainable parameter, once
    zero = {id(p) for g in groups if g["weight_decay"] == 0 for p in g["params"]}
    assert zero == alphas(model) and zero
    assert all(g["weight_decay"] == 5e-4 for g in groups if g["weight_decay"] != 0)
    assert {id(p) for p in no_decay_parameters(model)} == alphas(model)
    # the same rule through mmengine's paramwise_cfg
    mm = mmengine_decay(model, base_wd=5e-4)
    assert set(mm) == trainable
    assert {i for i, wd in mm.items() if wd == 0} == alphas(model)


def test_rank_is_not_the_rule():
    """Biases, norm scales, WN's g and SN's mixing logits are 1-d like alpha, and keep their decay."""
    model = Mixed()
    groups = param_groups(model, weight_decay=0.1)
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    one_d = [n for n, p in model.named_parameters() if p.dim() == 1 and id(p) in decayed]
    for expected in ("pws.conv.bias", "wn.conv.g", "bn.norm.weight", "gn.norm.bias", "sn.norm.mean_weight",
                     "head.bias", "shared.bias"):
        assert expected in one_d
    assert "fixed.conv.alpha" not in dict(model.named_parameters())  # learn_alpha=False: a buffer


def test_sgd_step_decays_everything_but_alpha():
    model = Mixed()
    opt = torch.optim.SGD(param_groups(model, weight_decay=0.1), lr=1.0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # the step is weight decay alone
    opt.step()
    for n, p in model.named_parameters():
        if not p.requires_grad or n.endswith("alpha"):
            torch.testing.assert_close(p.detach(), before[n])
        else:
            torch.testing.assert_close(p.detach(), 0.9 * before[n])


def test_model_without_pws_has_an_empty_no_decay_group():
    model = NormMethod("bn").conv_norm(3, 4, 3)
    groups = param_groups(model, weight_decay=1e-4)
    assert groups[1]["params"] == [] and groups[1]["weight_decay"] == 0.0
    torch.optim.SGD(groups, lr=0.1).step()


def test_real_mmengine_constructor():
    from mmengine import optim

    model = Mixed()
    wrapper = optim.build_optim_wrapper(
        model,
        {"optimizer": {"type": "SGD", "lr": 0.1, "weight_decay": 5e-4},
         "paramwise_cfg": mmengine_paramwise_cfg()},
    )
    zero = {id(p) for g in wrapper.optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    assert zero == alphas(model)
