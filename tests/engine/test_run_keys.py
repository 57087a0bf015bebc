"""The run's keys of an mmengine config come from one place, :func:`pws.engine.run_keys.add_run_keys`: an
app's config states the experiment only, the engine adds work_dir, launcher, seed, resume, the loop, the
checkpoint hook, EMA, compile and the workers' shield (no Runner is built here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from pws.classify.app import CLASSIFY
from pws.classify.config import make_plan
from pws.engine.compose import compose_config
from pws.engine.process import Process
from pws.engine.run_keys import LOOP, add_run_keys

RUN_KEYS = ("work_dir", "launcher", "randomness", "resume", "load_from", "compile", "experiment_name")


@dataclass(frozen=True)
class FakePlan:
    """The fields of a plan that the run's keys read."""

    seed: int = 3
    compile: str | None = None
    ema_decay: float | None = None
    ema_warmup: bool = True
    sync_bn: bool = False


ONE = Process()
TWO_ON_CPUS = Process(rank=1, local_rank=1, world_size=2, launcher="torchrun")
GLOO = {"launcher": "pytorch", "env_cfg": {"dist_cfg": {"backend": "gloo"}}}  # join, 2 CPU processes


def experiment() -> dict:
    """An app's experiment as the engine receives it: a loop config with by_epoch, a checkpoint interval, a
    loader with workers."""
    return {
        "train_cfg": {"by_epoch": True, "max_epochs": 2, "val_interval": 1},
        "default_hooks": {"checkpoint": {"interval": 5, "max_keep_ckpts": 1}},
        "train_dataloader": {"batch_size": 2, "num_workers": 2},
        "val_dataloader": {"batch_size": 2, "num_workers": 0},
        "custom_hooks": [{"type": "NumClassCheckHook"}],
    }


def test_a_fresh_single_process_run_gets_its_keys(tmp_path: Path) -> None:
    mm = add_run_keys(experiment(), FakePlan(), app_name="detect", run_dir=tmp_path, checkpoint=None,
                      process=ONE, group={"launcher": "none"})  # fmt: skip
    assert (mm["work_dir"], mm["launcher"]) == (str(tmp_path), "none")
    assert (mm["resume"], mm["load_from"]) == (False, None)
    assert mm["randomness"] == {"seed": 3, "deterministic": False}
    assert mm["train_cfg"] == {"max_epochs": 2, "val_interval": 1, "type": LOOP, "seed": 3}
    assert mm["default_hooks"]["checkpoint"] == {"interval": 5, "max_keep_ckpts": 1, "type": "CheckpointHook",
                                                 "by_epoch": True, "save_last": True}  # fmt: skip
    assert mm["custom_hooks"] == [{"type": "NumClassCheckHook"}]  # no EMA unless asked for
    assert "compile" not in mm and "sync_bn" not in mm
    assert mm["train_dataloader"]["worker_init_fn"]["seed"] == 3  # the workers' shield, where workers are
    assert "worker_init_fn" not in mm["val_dataloader"]
    assert mm["experiment_name"].startswith("pws-detect-")


def test_a_resumed_run_of_several_processes_with_ema_and_compile(tmp_path: Path) -> None:
    checkpoint = tmp_path / "epoch_1.pth"
    plan = FakePlan(compile="default", ema_decay=0.9, ema_warmup=False, sync_bn=True)
    first = add_run_keys(experiment(), plan, app_name="classify", run_dir=tmp_path, checkpoint=checkpoint,
                         process=TWO_ON_CPUS, group=GLOO)  # fmt: skip
    assert (first["launcher"], first["resume"], first["load_from"]) == ("pytorch", True, str(checkpoint))
    assert first["compile"] == {"mode": "default"}
    assert (first["env_cfg"], first["sync_bn"]) == ({"dist_cfg": {"backend": "gloo"}}, "torch")
    assert first["custom_hooks"][-1] == {"type": "EMAHook", "ema_type": "TFStyleEMA", "decay": 0.9,
                                         "warmup": False}  # fmt: skip
    assert first["train_dataloader"]["worker_init_fn"]["rank"] == 1
    second = add_run_keys(experiment(), plan, app_name="classify", run_dir=tmp_path, checkpoint=checkpoint,
                          process=TWO_ON_CPUS, group=GLOO)  # fmt: skip
    assert second["experiment_name"] != first["experiment_name"]  # two Runners of one process, two names


@pytest.mark.parametrize("overrides", [[], ["ema.enabled=true", "train.compile=default"]])
def test_the_classification_app_states_no_run_key(overrides: list[str]) -> None:
    plan = make_plan(compose_config("classify", ["scale=smoke", *overrides]), world_size=1)
    mm = CLASSIFY.mmengine_config(plan, {"num_classes": 10}, world_size=1)
    assert not [k for k in RUN_KEYS if k in mm]
    assert "type" not in mm["train_cfg"] and "custom_hooks" not in mm
    assert set(mm["default_hooks"]["checkpoint"]) == {"interval", "max_keep_ckpts"}
