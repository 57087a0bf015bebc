"""The classification app's mmengine pieces: the metric (top-1/top-5 error, test loss), the model's modes,
and one optimizer step of the app's mmengine optimizer equal to SGD on ``pws.optim.param_groups``."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from pws.classify.metric import ClassificationError, topk_errors
from pws.classify.model import Classifier


def test_topk_errors_on_known_logits() -> None:
    logits = torch.tensor([
        [9.0, 1, 2, 3, 4, 5, 6],  # label 0: top-1 hit
        [1.0, 9, 8, 7, 6, 5, 0],  # label 6: the lowest logit, missed by top-1 and top-5
        [9.0, 8, 7, 6, 5, 4, 3],  # label 3: 4th highest, a top-5 hit only
        [0.0, 1, 2, 3, 4, 5, 9],  # label 5: 2nd highest, a top-5 hit only
    ])  # fmt: skip
    labels = torch.tensor([0, 6, 3, 5])
    assert topk_errors(logits, labels) == {1: 75.0, 5: 25.0}
    assert topk_errors(logits, labels, ks=(1, 2, 7)) == {1: 75.0, 2: 50.0, 7: 0.0}
    # fewer classes than k: k is capped at the class count (every label is among "all" of them)
    assert topk_errors(logits[:, :3], torch.tensor([0, 1, 2, 0]), ks=(5,)) == {5: 0.0}


def test_the_metric_over_several_batches() -> None:
    torch.manual_seed(0)
    logits, labels = torch.randn(10, 4), torch.randint(0, 4, (10,))
    metric = ClassificationError()
    for part in (slice(0, 3), slice(3, 10)):
        metric.process({}, [(logits[part], labels[part])])
    out = metric.compute_metrics(metric.results)
    expected_top1 = 100.0 * float((logits.argmax(1) != labels).float().mean())
    assert out["top1_error"] == pytest.approx(expected_top1)
    assert out["top5_error"] == 0.0  # 4 classes
    assert out["test_loss"] == pytest.approx(float(F.cross_entropy(logits, labels)))
    assert out["test_images"] == 10


def test_the_model_modes() -> None:
    torch.manual_seed(0)
    model = Classifier("plain_c", {"method": "pws", "gamma": 1e-3}, num_classes=10, width=0.125)
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([1, 2, 3, 4])
    logits = model(images, mode="tensor")
    assert logits.shape == (4, 10)
    losses = model(images, labels, mode="loss")
    assert set(losses) == {"loss", "error"}
    assert float(losses["loss"].detach()) == pytest.approx(float(F.cross_entropy(logits, labels).detach()))
    assert not losses["error"].requires_grad
    assert float(losses["error"]) == 100.0 * float((logits.argmax(1) != labels).float().mean())
    ((out, lab),) = model(images, labels, mode="predict")
    assert torch.equal(out, logits.detach()) and torch.equal(lab, labels)
    with pytest.raises(ValueError, match="mode must be"):
        model(images, labels, mode="nope")


def test_one_step_of_the_apps_optimizer_is_sgd_on_the_papers_param_groups() -> None:
    """The app's mmengine optim wrapper (paramwise_cfg: alpha without weight decay) and ``train_step`` take
    exactly the step of ``torch.optim.SGD(pws.optim.param_groups(...))`` with a cross-entropy loss, as the
    project's earlier hand-written loop did."""
    from mmengine.optim import build_optim_wrapper

    from pws.classify.app import CLASSIFY
    from pws.classify.config import make_plan
    from pws.optim import param_groups

    from .conftest import compose_cfg

    plan = make_plan(compose_cfg(["scale=smoke", "norm=pws", "model.width=0.125"]), world_size=1)
    mm = CLASSIFY.mmengine_config(plan, {"num_classes": 10}, world_size=1)
    torch.manual_seed(0)
    model = Classifier("plain_c", {"method": "pws", **plan.method.options}, num_classes=10, width=0.125)
    reference = copy.deepcopy(model.net)
    wrapper = build_optim_wrapper(model, mm["optim_wrapper"])
    decay = {id(p): g["weight_decay"] for g in wrapper.optimizer.param_groups for p in g["params"]}
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[i] for i, wd in decay.items() if wd == 0.0} == {
        n for n in names.values() if n.endswith(".alpha")} != set()
    assert {wd for wd in decay.values() if wd} == {plan.sgd.weight_decay}
    groups = param_groups(reference, plan.sgd.weight_decay)
    optimizer = torch.optim.SGD(groups, lr=plan.sgd.lr, momentum=plan.sgd.momentum)
    g = torch.Generator().manual_seed(1)
    images, labels = torch.randn(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g)
    for _ in range(3):
        log = model.train_step([images, labels], wrapper)
        loss = F.cross_entropy(reference(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert float(log["loss"]) == float(loss) and math.isfinite(float(loss))
        for a, b in zip(model.net.parameters(), reference.parameters(), strict=True):
            assert torch.equal(a, b)
