"""The authors' weight average (``ema.enabled=true``): :class:`pws.engine.ema.TFStyleEMA`'s decay maths, and
that a run evaluates the averaged weights (mmengine's ``EMAHook`` swaps them in for the evaluation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from app_helpers import WithHooks
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from torch import nn

from pws.engine.ema import TFStyleEMA, tf_decay

from .conftest import compose_cfg, tiny


def test_tf_decay() -> None:
    assert tf_decay(0.997, 0, warmup=True) == pytest.approx(1 / 10)
    assert tf_decay(0.997, 5, warmup=True) == pytest.approx(6 / 15)
    assert tf_decay(0.997, 10**6, warmup=True) == 0.997
    assert tf_decay(0.5, 8, warmup=True) == 0.5  # 9/18: the cap from here on
    assert tf_decay(0.997, 0, warmup=False) == 0.997
    with pytest.raises(ValueError, match="decay must be in"):
        TFStyleEMA(nn.Linear(2, 2), decay=1.0)


@pytest.mark.parametrize(("warmup", "expected"), [(False, 3.0), (True, 2 / 11 * 2.0 + 9 / 11 * 12.0)])
def test_one_update_weighs_the_old_average_by_the_decay(warmup: bool, expected: float) -> None:
    """Decay 0.9, an average at 2 and a new weight at 12: ``0.9 * 2 + 0.1 * 12 = 3`` without warm-up (the
    inverted update would give 11); with warm-up the second update's decay is ``min(0.9, 2 / 11)``."""
    model = nn.Linear(1, 1, bias=False)
    ema = TFStyleEMA(model, decay=0.9, warmup=warmup)
    with torch.no_grad():
        model.weight.fill_(2.0)
        ema.update_parameters(model)  # the first update copies
        model.weight.fill_(12.0)
        ema.update_parameters(model)
    assert ema.module.weight.item() == pytest.approx(expected)


@pytest.mark.parametrize(("warmup", "decay"), [(True, 0.5), (False, 0.9)])
def test_the_average_follows_the_recurrence(warmup: bool, decay: float) -> None:
    """After n updates: shadow_1 = p_1 (mmengine's averaged models copy at their first update), then
    shadow_t = d * shadow_{t-1} + (1 - d) * p_t with d = min(decay, (1 + s) / (10 + s)), s = t - 1 the
    updates before; buffers are the live model's, not averaged. With warm-up, decay 0.5 reaches the cap
    after 8 updates (12 updates see both regimes); without, 0.9 tells d from 1 - d."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ema = TFStyleEMA(model, decay=decay, warmup=warmup)
    expected: list[torch.Tensor] | None = None
    for step in range(12):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))  # a training step
        model.train()(torch.randn(8, 3))  # moves the BN running statistics
        ema.update_parameters(model)
        live = [p.detach().clone() for p in model.parameters()]
        if expected is None:
            expected = live
        else:
            d = min(decay, (1 + step) / (10 + step)) if warmup else decay
            expected = [d * e + (1 - d) * p for e, p in zip(expected, live, strict=True)]
    assert expected is not None
    for avg, e in zip(ema.module.parameters(), expected, strict=True):
        torch.testing.assert_close(avg, e, rtol=1e-6, atol=1e-7)
    for avg, b in zip(ema.module.buffers(), model.buffers(), strict=True):
        assert torch.equal(avg, b)


# --------------------------------------------------------------------------------------- in a real run

SEEN: dict[str, Any] = {}


@HOOKS.register_module(name="ClassifyTestEMAProbe", force=True)
class _Probe(Hook):
    """Runs after EMAHook (priority NORMAL): the live weights after each step, the averaged ones at the end
    of the epoch, and the weights the model holds while it is evaluated."""

    priority = "LOW"

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:  # fmt: skip
        SEEN["live"].append([p.detach().clone() for p in runner.model.parameters()])

    def after_train_epoch(self, runner: Any) -> None:
        ema = next(h for h in runner.hooks if type(h).__name__ == "EMAHook")
        SEEN["averaged"] = [p.detach().clone() for p in ema.ema_model.module.parameters()]
        SEEN["before_eval"] = [p.detach().clone() for p in runner.model.parameters()]

    def before_val_epoch(self, runner: Any) -> None:
        SEEN["evaluated"] = [p.detach().clone() for p in runner.model.parameters()]

    def after_val_epoch(self, runner: Any, metrics: Any = None) -> None:
        SEEN["after_eval"] = [p.detach().clone() for p in runner.model.parameters()]


def test_a_run_evaluates_the_averaged_weights(tmp_path: Path, data_root: Path) -> None:
    from pws.classify.app import CLASSIFY
    from pws.engine.lifecycle import execute

    SEEN.clear()
    SEEN["live"] = []
    overrides = [f"data_root={data_root}", *tiny(), "train.max_steps_per_epoch=4", "ema.enabled=true",
                 "ema.decay=0.6"]  # fmt: skip
    app = WithHooks(CLASSIFY, [{"type": "ClassifyTestEMAProbe"}])
    record = execute(app, compose_cfg(overrides), tmp_path / "run", overrides)
    assert record["status"] == "finished"
    live = SEEN["live"]
    assert len(live) == 4
    expected = live[0]
    for t, params in enumerate(live[1:], start=1):
        d = min(0.6, (1 + t) / (10 + t))
        expected = [d * e + (1 - d) * p for e, p in zip(expected, params, strict=True)]
    for avg, e in zip(SEEN["averaged"], expected, strict=True):
        torch.testing.assert_close(avg, e, rtol=1e-6, atol=1e-7)
    for before, last in zip(SEEN["before_eval"], live[-1], strict=True):
        assert torch.equal(before, last)  # trained weights until the evaluation starts
    for evaluated, avg in zip(SEEN["evaluated"], SEEN["averaged"], strict=True):
        assert torch.equal(evaluated, avg)  # the evaluation sees the average
    assert any(not torch.equal(a, b) for a, b in zip(SEEN["averaged"], live[-1], strict=True))
    for after, last in zip(SEEN["after_eval"], live[-1], strict=True):
        assert torch.equal(after, last)  # and training goes on with its own weights
