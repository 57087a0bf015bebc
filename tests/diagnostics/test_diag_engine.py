"""The variance probe inside a run of the engine: the classification app's ``probe`` option adds the hook,
which records one row per training step with the optimizer's LR (and the step that diverged); the option's
values are checked like every other key; Figure 2's ``train_gammas`` is one such run per gamma."""

from __future__ import annotations

import math

import pytest

from pws.classify import ConfigError, make_plan, run
from pws.classify.app import CLASSIFY, PROBE_FILE
from pws.diagnostics import figures
from pws.diagnostics.measurements import compose_run

# Two epochs of 3 steps of 8 digits (a fixed subset), a narrow plain_c; the schedule (200 epochs, LR x0.1
# after 100, 150, 180) shortened to 2 epochs steps the LR once, after epoch 1.
TINY = [
    "scale=smoke", "data=digits", "model=plain_c", "model.width=0.125", "optim.lr=0.05",
    "scale.classify.epochs=2", "train.max_steps_per_epoch=3", "data.batch_size=8", "data.test_size=32",
    "wandb.mode=disabled",
]  # fmt: skip


def test_probe_hook_in_an_engine_run_records_every_step_with_the_optimizers_lr(tmp_path):
    overrides = [*TINY, "norm=pws", "norm.gamma=1e-3", "probe.enabled=true", "probe.layers=[1,3]"]
    record = run(compose_run(overrides), tmp_path, overrides)
    assert record["status"] == "finished"
    rows = figures.read_csv(tmp_path / PROBE_FILE)
    # one row per training step and probed layer, in order
    assert [(r["iter"], r["layer"]) for r in rows] == [(i, layer) for i in range(6) for layer in (1, 3)]
    assert {r["name"] for r in rows if r["layer"] == 3} == {"features.4.conv"}  # the bare net's numbering
    # the LR of each row is the optimizer's at that step: the schedule's step after epoch 1 is in the rows,
    # and each epoch's LR is the one the engine's record read from the optimizer
    lrs = [record["history"][0]["lr"], record["history"][1]["lr"]]
    assert lrs == pytest.approx([0.05, 0.005])
    for r in rows:
        assert r["lr"] == lrs[r["iter"] // 3]
        assert r["epoch"] == pytest.approx(r["iter"] / 3)
        assert r["gamma"] == 1e-3 and r["kind"] == "pws"
        assert r["inv_std_max"] == pytest.approx(1 / math.sqrt(r["wvar_min"] + 1e-3))
        assert r["shift"] < 1e-12  # PWS: no shift of the average gradient (eq. 13)
    # the loss column is the step's training loss: its mean per epoch is the record's train_loss
    for epoch in (0, 1):
        losses = [r["loss"] for r in rows if r["layer"] == 1 and r["iter"] // 3 == epoch]
        assert sum(losses) / 3 == pytest.approx(record["history"][epoch]["train_loss"], rel=1e-6)


def test_a_diverging_run_records_the_step_that_diverged(tmp_path):
    overrides = [*TINY, "norm=none", "optim.lr=1e6", "probe.enabled=true", "probe.layers=null"]
    record = run(compose_run(overrides), tmp_path, overrides)
    assert record["status"] == "diverged"
    rows = figures.read_csv(tmp_path / PROBE_FILE)
    last = max(r["iter"] for r in rows)
    assert last >= 1  # a first step with a finite loss, so that the rows before the last one are checked
    assert f"at iteration {last + 1} " in record["diverged_at"]  # the engine counts from 1
    assert sorted({r["iter"] for r in rows}) == list(range(last + 1))
    assert not math.isfinite(rows[-1]["loss"])
    assert all(math.isfinite(r["loss"]) for r in rows if r["iter"] < last)


def test_the_probe_option_is_checked_and_off_by_default():
    assert make_plan(compose_run(TINY), world_size=1).probe is None
    plan = make_plan(compose_run([*TINY, "probe.enabled=true"]), world_size=1)
    assert plan.probe == {"layers": [3], "interval": 1, "activations": False}
    hooks = CLASSIFY.mmengine_config(plan, {"num_classes": 10}, 1)["custom_hooks"]
    assert hooks == [dict(type="VarianceProbeHook", module="net", filename=PROBE_FILE, lr=None, layers=[3],
                          interval=1, activations=False)]  # fmt: skip
    off = make_plan(compose_run(TINY), world_size=1)
    assert "custom_hooks" not in CLASSIFY.mmengine_config(off, {"num_classes": 10}, 1)
    bad = ["probe.enabled=maybe", "probe.layers=[0,features.4.conv]", "probe.interval=0",
           "probe.activations=1"]  # fmt: skip
    with pytest.raises(ConfigError) as err:
        make_plan(compose_run([*TINY, *bad]), world_size=1)
    text = str(err.value)
    assert "(4 problem(s))" in text
    for key in ("probe.enabled", "probe.layers", "probe.interval", "probe.activations"):
        assert key in text
    assert make_plan(compose_run([*TINY, "probe.layers=[features.4.conv]"]), 1).probe is None  # names are ok
