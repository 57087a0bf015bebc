"""The probe as an mmengine hook: its runner-facing logic with a stand-in runner (no mmengine needed), and,
where mmengine is installed, registration and a real Runner."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import pytest
import torch
from detection_stack import require_detection_stack
from torch import nn

from pws.diagnostics.probe import ROW_COLUMNS, VarianceProbe
from pws.diagnostics.runner_hook import ProbeHookLogic
from pws.nn import PWSConv2d


class Detector(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(PWSConv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        return self.head(torch.relu(self.backbone(x)))


def test_hook_logic_with_a_stand_in_runner(tmp_path):
    model = Detector()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02)
    runner = SimpleNamespace(
        model=SimpleNamespace(module=model),  # looked through like a DDP wrapper
        iter=0, epoch=0, rank=0, work_dir=str(tmp_path),
        optim_wrapper=SimpleNamespace(get_lr=lambda: {"lr": [optimizer.param_groups[0]["lr"]]}),
    )  # fmt: skip
    hook = ProbeHookLogic(module="backbone", interval=2)
    hook.before_run(runner)
    for it in range(5):
        runner.iter = it
        hook.before_train_iter(runner, it)
        loss = model(torch.randn(2, 3, 6, 6)).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()  # the gradient numbers were taken when the gradient was accumulated
        hook.after_train_iter(runner, it)
    hook.after_run(runner)
    with open(tmp_path / "variance_probe.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["iter", "epoch", "loss", *ROW_COLUMNS]
    # iteration 0 and every 2nd (1, 3): two conv layers of the backbone each; not the head
    assert [(r["iter"], r["layer"]) for r in rows] == [(str(i), str(j)) for i in (0, 1, 3) for j in (1, 2)]
    assert {r["lr"] for r in rows} == {"0.02"}
    assert float(rows[0]["shift"]) < 1e-20 < float(rows[1]["shift"])  # PWS conv vs plain conv
    assert not any(m._forward_hooks for m in model.modules())


def test_hook_logic_layers_and_a_resumed_run_keep_one_row_per_step(tmp_path):
    """``layers`` selects convs; a run resumed at iteration k keeps the rows before k and writes the rest
    again (the rows written after the checkpoint by the interrupted session are replaced, not doubled)."""
    model = Detector()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    runner = SimpleNamespace(model=model, iter=0, epoch=0, rank=0, work_dir=str(tmp_path),
                             optim_wrapper=SimpleNamespace(get_lr=lambda: [optimizer.param_groups[0]["lr"]]),
                             train_loop=SimpleNamespace(dataloader=[None] * 4))  # fmt: skip

    def session(first: int, last: int, lr: float) -> None:
        optimizer.param_groups[0]["lr"] = lr
        hook = ProbeHookLogic(module="backbone", layers=[2])
        hook.before_run(runner)
        for it in range(first, last):
            runner.iter = it
            hook.before_train_iter(runner, it)
            loss = model(torch.randn(2, 3, 6, 6)).square().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            hook.after_train_iter(runner, it, outputs={"loss": loss.detach()})
        hook.after_run(runner)

    session(0, 6, lr=0.1)  # interrupted after iteration 5; say the checkpoint was taken after iteration 3
    session(4, 7, lr=0.2)  # resumed at iteration 4
    with open(tmp_path / "variance_probe.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(int(r["iter"]), r["layer"], r["name"]) for r in rows] == [(i, "2", "2") for i in range(7)]
    assert [float(r["lr"]) for r in rows] == [0.1] * 4 + [0.2] * 3
    assert [float(r["epoch"]) for r in rows] == [i / 4 for i in range(7)]  # iter / iterations per epoch
    assert all(float(r["loss"]) > 0 for r in rows)


def test_hook_logic_rejects_a_missing_submodule(tmp_path):
    runner = SimpleNamespace(model=nn.Sequential(nn.Conv2d(1, 1, 1)), work_dir=str(tmp_path))
    with pytest.raises(ValueError, match="no submodule 'backbone'"):
        ProbeHookLogic(module="backbone").before_run(runner)
    with pytest.raises(ValueError, match="interval"):
        ProbeHookLogic(interval=0)


def test_probe_reads_the_detection_layers():
    """pws.detect's mmcv-registered convs subclass pws.nn's: the probe sees PWS as PWS (zero shift)."""
    require_detection_stack()
    from pws.detect import layers

    model = nn.Sequential(layers.PWS(3, 8, 3, padding=1), nn.ReLU(), layers.HeConv(8, 4, 3, padding=1))
    probe = VarianceProbe(model, lr=0.01)
    model(torch.randn(2, 3, 8, 8)).square().mean().backward()
    pws_row, plain_row = probe.step()
    assert (pws_row["kind"], plain_row["kind"]) == ("pws", "conv")
    assert pws_row["shift_rel"] < 1e-10 < plain_row["shift_rel"]


def test_registered_hook_runs_in_an_mmengine_runner(tmp_path):
    from mmengine.model import BaseModel
    from mmengine.registry import HOOKS
    from mmengine.runner import Runner

    from pws.diagnostics.mmengine_hook import VarianceProbeHook

    assert HOOKS.get("VarianceProbeHook") is VarianceProbeHook

    class ToyDetector(BaseModel):
        def __init__(self) -> None:
            super().__init__()
            self.net = Detector()

        def forward(self, inputs, labels=None, mode="tensor"):
            out = self.net(inputs)
            if mode == "loss":
                return {"loss": out.square().mean()}
            return out

    data = [dict(inputs=torch.randn(3, 6, 6)) for _ in range(8)]
    runner = Runner(
        model=ToyDetector(),
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=data,
            sampler=dict(type="DefaultSampler", shuffle=False),
            batch_size=2,
            collate_fn=dict(type="default_collate"),
        ),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05)),
        train_cfg=dict(by_epoch=False, max_iters=3),
        custom_hooks=[dict(type="VarianceProbeHook", module="net.backbone")],
        default_hooks=dict(checkpoint=None, logger=None),
        default_scope="mmengine",
    )
    runner.train()
    with open(tmp_path / "variance_probe.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["iter"], r["layer"]) for r in rows] == [(str(i), str(j)) for i in range(3) for j in (1, 2)]
    assert {r["lr"] for r in rows} == {"0.05"}
