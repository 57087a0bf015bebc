"""A run interrupted by a preemption signal and resumed ends exactly as an uninterrupted run with the same
seed: every tensor of the final checkpoint, the metrics and the whole history, for every app.

The signal is sent by a test hook after a chosen iteration (:class:`~tests.engine.conftest.ProbeHook`), in
this process, so the interruption point is exact: mid-epoch (the loop skips the batches already done and
restores the random states: classification's random shifts, detection's SSD augmentation) and at an
epoch's last iteration (the resumed run ends that epoch: its history entry and evaluation).
"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from pws.engine.checkpoints import LAST_CHECKPOINT
from pws.engine.errors import Preempted
from pws.records.metrics_file import write_metrics

from .conftest import CASES, PROBES, Case, load_checkpoint, probe, read_json, same, tensors


def final_checkpoint(run_dir: Path) -> dict[str, Any]:
    return load_checkpoint(run_dir / "epoch_2.pth")


def assert_same_weights(a: Path, b: Path) -> None:
    """Every tensor of the final checkpoints' model, EMA and optimizer states is bitwise equal."""
    ca, cb = final_checkpoint(a), final_checkpoint(b)
    for part in ("state_dict", "ema_state_dict", "optimizer"):
        assert (part in ca) == (part in cb), part
        if part not in ca:
            continue
        ta, tb = dict(tensors(ca[part])), dict(tensors(cb[part]))
        assert ta.keys() == tb.keys(), part
        assert ta, part
        unequal = [k for k in ta if not torch.equal(ta[k], tb[k])]
        assert not unequal, f"{part}: {unequal[:5]}"
    assert ca["meta"]["epoch"] == cb["meta"]["epoch"] == 2
    assert ca["meta"]["iter"] == cb["meta"]["iter"]


def assert_same_record(a: dict[str, Any], b: dict[str, Any], app: Case) -> None:
    assert a["status"] == b["status"] == "finished"
    for name in app.app.metric_names(app.app.plan(app.config(), 1)):
        assert same(a[name], b[name]), (name, a[name], b[name])
    assert same(a["evaluated"], b["evaluated"])
    assert [h["epoch"] for h in a["history"]] == [h["epoch"] for h in b["history"]] == [1, 2]
    for x, y in zip(a["history"], b["history"], strict=True):
        assert same(x, y), (x, y)


POINTS = {
    "mid-epoch": (lambda n: n + n // 2, ()),  # within epoch 2: epoch 1's history must survive
    "epoch-end": (lambda n: n, ()),  # the last iteration of epoch 1, before its evaluation
    "ema-mid-epoch": (lambda n: n + n // 2, ("ema.enabled=true",)),  # with the averaged weights
}


@pytest.mark.parametrize("point", list(POINTS))
def test_interrupted_and_resumed_run_equals_the_uninterrupted_one(app: Case, reference, tmp_path: Path,
                                                                   point: str) -> None:  # fmt: skip
    at_of, extra = POINTS[point]
    if extra and app.name != "classify":
        pytest.skip("the EMA option is classification's (the authors' CIFAR code)")
    ref = reference(app, extra)
    at = at_of(app.iters_per_epoch)
    run_dir = tmp_path / "run"
    handler = signal.getsignal(signal.SIGUSR1)

    with pytest.raises(Preempted) as info:
        app.execute(run_dir, *extra, hooks=[probe("interrupted", signal_at=at)])
    assert (info.value.signum, info.value.iteration) == (signal.SIGUSR1, at)
    assert [p["iter"] for p in PROBES["interrupted"]] == list(range(1, at + 1))  # stopped at once
    assert signal.getsignal(signal.SIGUSR1) == handler  # the engine's handler was put back
    assert not (run_dir / ".lock").exists()
    stopped = read_json(run_dir / "metrics.json")
    assert stopped["status"] == "running" and "SIGUSR1" in stopped["interrupted"]
    saved = run_dir / f"preempted_iter_{at}.pth"
    assert saved.is_file() and (run_dir / LAST_CHECKPOINT).read_text().strip() == str(saved)
    assert len(stopped["history"]) == (at - 1) // app.iters_per_epoch  # the epochs completed before

    resumed = app.execute(run_dir, *extra, hooks=[probe("resumed")])
    assert [p["iter"] for p in PROBES["resumed"]] == list(range(at + 1, 2 * app.iters_per_epoch + 1))
    assert [p["loss"] for p in PROBES["resumed"]] == [p["loss"] for p in ref.iterations[at:]]
    assert_same_record(resumed, ref.record, app)
    assert_same_record(read_json(run_dir / "metrics.json"), read_json(ref.run_dir / "metrics.json"), app)
    assert_same_weights(run_dir, ref.run_dir)
    assert not list(run_dir.glob("preempted_iter_*.pth"))  # superseded by the epoch checkpoint


def test_a_signal_while_the_run_starts_stops_it_as_training_starts(reference, data_root: Path, tmp_path: Path
                                                                   ) -> None:  # fmt: skip
    """A signal before training (the Runner being built: SLURM's time-limit signal comes at a fixed time
    after a job starts, a requeued one's too) is the run's, not submitit's handler's: the run stops as
    training starts, with nothing to save, and the same command then trains it to the uninterrupted end."""
    app = Case(**{**CASES["classify"].__dict__, "data_root": data_root})
    ref = reference(app)
    run_dir = tmp_path / "run"
    handler = signal.getsignal(signal.SIGUSR1)
    with pytest.raises(Preempted) as info:
        app.execute(run_dir, hooks=[probe("starting", signal_at=0)])
    assert (info.value.signum, info.value.iteration) == (signal.SIGUSR1, 0) and PROBES["starting"] == []
    assert signal.getsignal(signal.SIGUSR1) == handler
    stopped = read_json(run_dir / "metrics.json")
    assert stopped["status"] == "running" and "SIGUSR1" in stopped["interrupted"]
    assert not list(run_dir.glob("*.pth"))
    resumed = app.execute(run_dir, hooks=[probe("started")])
    assert [p["loss"] for p in PROBES["started"]] == [p["loss"] for p in ref.iterations]
    assert_same_record(resumed, ref.record, app)


def test_the_history_holds_the_lr_the_optimizer_applied(app: Case, reference) -> None:
    """The LR of every history entry is the optimizer's (read in each iteration), and the schedule is
    the one the app asked for: the step after epoch 1 of the tiny run divides the LR by 10, once (the
    paper's two steps 90/170 of 240 detection epochs both land on epoch 1 at 2 epochs: they merge)."""
    ref = reference(app)
    history = ref.record["history"]
    assert [h["lr"] for h in history] == pytest.approx([app.base_lr, app.base_lr * 0.1], rel=1e-12)
    for entry in history:
        seen = [p for p in ref.iterations if p["epoch"] == entry["epoch"]]
        assert len(seen) == app.iters_per_epoch
        assert {p["lr"] for p in seen} == {entry["lr"]}
        assert entry["iter"] == seen[-1]["iter"]
        assert entry["train_loss"] == pytest.approx(sum(p["loss"] for p in seen) / len(seen), rel=1e-9)
    assert ref.record[app.metric] == history[-1][app.metric]


def test_shorten_schedule_merges_steps_that_land_on_one_epoch() -> None:
    from pws.engine.schedule import shorten_schedule

    assert shorten_schedule(240, [90, 170], 2) == (2, [1])  # not [1, 1]: x0.1 once, not x0.01
    assert shorten_schedule(200, [100, 150, 180], 12) == (12, [6, 9, 11])
    assert shorten_schedule(200, [100, 150, 180], 2) == (2, [1])
    assert shorten_schedule(200, [100, 150, 180], 6) == (6, [3, 4, 5])
    assert shorten_schedule(12, [3, 6, 9], 1) == (1, [])
    assert shorten_schedule(200, [100, 150, 180], None) == (200, [100, 150, 180])


def test_a_copied_run_directory_resumes_from_its_own_checkpoint(app: Case, reference, tmp_path: Path) -> None:
    """mmengine's ``last_checkpoint`` holds an absolute path: a run directory moved or copied elsewhere
    must resume from the checkpoint beside it, never from (or fail on) the original location."""
    ref = reference(app)
    run_dir = tmp_path / "copy"
    shutil.copytree(ref.run_dir, run_dir)
    record = read_json(run_dir / "metrics.json")
    write_metrics(run_dir, {**record, "status": "running"})  # as if killed after its last checkpoint
    original = ref.run_dir / "epoch_2.pth"
    moved = original.with_name("epoch_2.pth.elsewhere")
    original.rename(moved)  # the original's checkpoint is gone: only the copy's can be read
    try:
        resumed = app.execute(run_dir, hooks=[probe("copy")])
    finally:
        moved.rename(original)
    assert resumed["status"] == "finished" and PROBES["copy"] == []  # nothing left to train
    assert_same_record(resumed, ref.record, app)


@pytest.mark.parametrize("extra", [(), ("ema.enabled=true",)], ids=["plain", "ema"])
def test_a_run_killed_in_its_final_evaluation_evaluates_on_resume(
        app: Case, reference, tmp_path: Path, extra: tuple[str, ...]) -> None:  # fmt: skip
    """Killed (SIGKILL, a time limit) during the last evaluation: the last checkpoint and metrics.json
    hold epoch 2 trained but not evaluated. The same command evaluates it, with the weights the training
    would have evaluated (the averaged ones with EMA), and ends with the uninterrupted run's record."""
    if extra and app.name != "classify":
        pytest.skip("the EMA option is classification's (the authors' CIFAR code)")
    ref = reference(app, extra)
    run_dir = tmp_path / "run"
    shutil.copytree(ref.run_dir, run_dir)
    saved = load_checkpoint(run_dir / "epoch_2.pth")["pws_record"]  # written before epoch 2's evaluation
    assert saved["history"][-1]["epoch"] == 2 and app.metric not in saved["history"][-1]
    on_disk = read_json(run_dir / "metrics.json")
    write_metrics(run_dir, {**on_disk, **saved["metrics"], "status": "running", "history": saved["history"],
                            "evaluated": saved["evaluated"]})  # fmt: skip
    resumed = app.execute(run_dir, *extra, hooks=[probe("final")])
    assert PROBES["final"] == []
    assert_same_record(resumed, ref.record, app)


@HOOKS.register_module(name="EngineTestKeepCheckpoints", force=True)
class KeepCheckpointsHook(Hook):
    """After each epoch's checkpoint (mmengine's CheckpointHook runs before it), a copy of it in ``keep``:
    the smoke scale keeps only the newest checkpoint."""

    priority = "LOWEST"

    def __init__(self, keep: str) -> None:
        self.keep = Path(keep)

    def after_train_epoch(self, runner: Any) -> None:
        self.keep.mkdir(exist_ok=True)
        name = f"epoch_{runner.epoch + 1}.pth"  # the loop's epoch counter moves on after this hook
        shutil.copy(Path(runner.work_dir) / name, self.keep / name)


def test_a_run_killed_in_an_earlier_evaluation_evaluates_it_on_resume(app: Case, tmp_path: Path) -> None:
    """Killed during epoch 1's evaluation of 2 (epoch_1.pth, written before it, is the last checkpoint; the
    record holds epoch 1 trained, not evaluated): the same command evaluates epoch 1 before training epoch 2
    and ends with the uninterrupted run's record (every epoch's metric in the history)."""
    uninterrupted = tmp_path / "uninterrupted"
    keep = {"type": "EngineTestKeepCheckpoints", "keep": str(tmp_path / "keep")}
    record = app.execute(uninterrupted, hooks=[keep])
    run_dir = tmp_path / "killed"
    shutil.copytree(uninterrupted, run_dir)
    (run_dir / "epoch_2.pth").unlink()
    shutil.copy(tmp_path / "keep" / "epoch_1.pth", run_dir / "epoch_1.pth")
    (run_dir / LAST_CHECKPOINT).write_text(str(run_dir / "epoch_1.pth"))
    saved = load_checkpoint(run_dir / "epoch_1.pth")["pws_record"]
    assert saved["history"][-1]["epoch"] == 1 and app.metric not in saved["history"][-1]
    write_metrics(run_dir, {**read_json(run_dir / "metrics.json"), **saved["metrics"], "status": "running",
                            "history": saved["history"], "evaluated": saved["evaluated"]})  # fmt: skip
    resumed = app.execute(run_dir)
    assert [app.metric in h for h in resumed["history"]] == [True, True]
    assert_same_record(resumed, record, app)
