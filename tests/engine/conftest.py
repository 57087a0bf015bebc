"""The engine's reliability tests, run for every app: the ``app`` fixture is parametrized over ``classify``
and ``detect``, each with a tiny run (2 epochs; classification 4 iterations per epoch, detection 2).

Helpers:

* :func:`compose` -- the app's Hydra config (:func:`pws.engine.compose.compose_config`);
* :meth:`Case.execute` -- one run in this process through :func:`pws.engine.lifecycle.execute`, optionally
  with test hooks added to the Runner (``app_helpers.WithHooks``);
* :class:`ProbeHook` -- records each training iteration's loss and the optimizer's LR and sends a signal to
  this process after a chosen iteration (how a preemption is made deterministic);
* :meth:`Case.cli` -- ``python -m pws.<app>`` in this process (Hydra and the exit code, stderr captured);
  :meth:`Case.subprocess` -- the same as a child process (signals, locks, torchrun).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from app_helpers import WithHooks, read_json, run_cli  # noqa: F401  (read_json: for the tests here)
from detection_stack import require_detection_stack
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from omegaconf import DictConfig

from pws.engine.checkpoints import mmengine_checkpoints
from pws.engine.compose import compose_config
from pws.engine.schema import CONFIG_DIR

REPO = CONFIG_DIR.parent

# ----------------------------------------------------------------------------------------- the two apps


@dataclass(frozen=True)
class Case:
    """One app with a tiny run: 2 epochs of ``iters_per_epoch`` iterations, the LR dropping x0.1 after
    epoch 1 (the app's schedule shortened to 2 epochs by the engine's rule)."""

    name: str  # classify | detect
    metric: str  # the record's main metric (NaN when diverged)
    tiny: tuple[str, ...]
    iters_per_epoch: int
    divergent: tuple[str, ...]  # overrides that make the tiny run diverge at once
    epochs_key: str  # the scale's epochs knob
    missing_data: tuple[str, ...]  # a full-scale run on data that is not there (``{nowhere}`` filled in)
    data_root: Path = field(default=Path("."))

    @property
    def app(self) -> Any:
        if self.name == "classify":
            from pws.classify.app import CLASSIFY

            return CLASSIFY
        from pws.detect.app import DETECT

        return DETECT

    @property
    def base_lr(self) -> float:
        """The tiny run's LR as the app's plan has it."""
        plan = self.app.plan(self.config(), 1)
        return (plan.settings if self.name == "detect" else plan).sgd.lr

    def overrides(self, *extra: str) -> list[str]:
        return [f"data_root={self.data_root}", *self.tiny, *extra]

    def config(self, *extra: str) -> DictConfig:
        return compose(self.name, self.overrides(*extra))

    def execute(self, run_dir: Path, *extra: str,
                hooks: list[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
        """One run of the tiny config (plus ``extra``) in this process; returns the record."""
        from pws.engine.lifecycle import execute

        app = WithHooks(self.app, hooks) if hooks else self.app
        overrides = self.overrides(*extra)
        return execute(app, compose(self.name, overrides), run_dir, overrides)

    def cli_args(self, run_dir: Path, *extra: str) -> list[str]:
        return [*self.overrides(*extra), f"hydra.run.dir={run_dir}"]

    def cli(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str]
            ) -> tuple[int, str, str]:  # fmt: skip
        """``python -m pws.<app> args`` in this process: (exit code, stdout, stderr)."""
        return run_cli(self.name, args, monkeypatch, capsys)

    def subprocess(self, args: list[str], *, launcher: list[str] | None = None) -> subprocess.Popen[str]:
        """``python -m pws.<app> args`` as a child process (``launcher``: e.g. torchrun's arguments)."""
        command = [sys.executable, *(launcher or []), "-m", f"pws.{self.name}", *args]
        return subprocess.Popen(command, cwd=REPO, env=child_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip


CLASSIFY_CASE = Case(
    name="classify",
    metric="top1_error",
    # plain_c at 1/8 width with PWS on 32 real digits (augmentation on: the random states must come back),
    # batch 8, 4 iterations per epoch
    tiny=("scale=smoke", "data=digits", "model=plain_c", "norm=pws", "model.width=0.125",
          "scale.classify.epochs=2", "train.max_steps_per_epoch=4", "data.batch_size=8", "data.test_size=32",
          "wandb.mode=disabled"),
    iters_per_epoch=4,
    divergent=("norm=none", "optim.lr=1e6"),
    epochs_key="scale.classify.epochs",
    missing_data=("scale=full", "data=cifar10", "data.root={nowhere}", "train.device=cpu"),
)
DETECT_CASE = Case(
    name="detect",
    metric="mAP",
    # SSD320-VGG16 with PWS on 4 generated VOC images at batch 2 (2 iterations per epoch), 2 test images
    tiny=("scale=smoke", "data=synthetic_voc", "data.num_train=4", "data.num_test=2", "data.batch_size=2",
          "scale.detect.epochs=2", "scale.detect.warmup_iters=0", "scale.detect.log_interval=1",
          "wandb.mode=disabled"),  # no warm-up (each epoch's LR is the schedule's), a log line per iteration
    iters_per_epoch=2,
    divergent=("norm=none", "optim.lr=1e12", "scale.detect.clip_grad_max_norm=null"),
    epochs_key="scale.detect.epochs",
    missing_data=("scale=full", "data=voc0712", "data.root={nowhere}", "train.device=cpu"),
)
CASES = {"classify": CLASSIFY_CASE, "detect": DETECT_CASE}


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data root of every run of the session (detection generates its synthetic set here once)."""
    return tmp_path_factory.mktemp("engine-data")


@pytest.fixture(scope="session", params=["classify", pytest.param("detect", marks=pytest.mark.slow)])
def app(request: pytest.FixtureRequest, data_root: Path) -> Case:
    """Each test runs once per app (detection's runs are SSD iterations of ~3 s on a CPU: marked slow, so
    that ``-m "not slow"`` checks the engine on classification alone in well under a minute)."""
    if request.param == "detect":
        require_detection_stack()
    return Case(**{**CASES[request.param].__dict__, "data_root": data_root})


@pytest.fixture(autouse=True)
def _no_wandb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")


def child_env() -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0"}


def compose(app: str, overrides: list[str]) -> DictConfig:
    """The config of ``python -m pws.<app> overrides`` through Hydra's compose API."""
    return compose_config(app, overrides)


# ---------------------------------------------------------------------------------- the test-only seam


PROBES: dict[str, list[dict[str, Any]]] = {}  # what each ProbeHook saw, by its ``key``


@HOOKS.register_module(name="EngineTestProbe", force=True)
class ProbeHook(Hook):
    """After each training iteration: records (iteration, loss, optimizer LR) under ``PROBES[key]``; after
    iteration ``signal_at`` (1-based, counted over the whole run; 0: as the Runner starts, before it loads
    a checkpoint) sends ``signum`` to this process.

    Its priority is above the engine's PreemptionHook (LOWEST), so the signal is seen at the same
    iteration: the checkpoint is that of iteration ``signal_at``, deterministically.
    """

    priority = "VERY_HIGH"

    def __init__(self, key: str, signal_at: int | None = None, signum: int = int(signal.SIGUSR1)) -> None:
        self.key = key
        self.signal_at = signal_at
        self.signum = signum
        PROBES.setdefault(key, [])

    def before_run(self, runner: Any) -> None:
        if self.signal_at == 0:
            os.kill(os.getpid(), self.signum)

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:  # fmt: skip
        done = runner.iter + 1
        lr = float(runner.optim_wrapper.optimizer.param_groups[0]["lr"])
        has_loss = isinstance(outputs, dict) and "loss" in outputs
        loss = float(outputs["loss"].detach()) if has_loss else math.nan
        PROBES[self.key].append({"iter": done, "epoch": runner.epoch + 1, "loss": loss, "lr": lr})
        if self.signal_at == done:
            os.kill(os.getpid(), self.signum)


def probe(key: str, signal_at: int | None = None, signum: int = int(signal.SIGUSR1)) -> dict[str, Any]:
    PROBES[key] = []
    return {"type": "EngineTestProbe", "key": key, "signal_at": signal_at, "signum": int(signum)}


@dataclass
class Reference:
    run_dir: Path
    record: dict[str, Any]
    iterations: list[dict[str, Any]]  # what the probe saw: (iter, epoch, loss, lr) per training iteration


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Case, tuple[str, ...]], Reference]:
    """The uninterrupted tiny run of an app with ``extra`` overrides (one per session, shared)."""
    done: dict[tuple[str, tuple[str, ...]], Reference] = {}

    def get(app: Case, extra: tuple[str, ...] = ()) -> Reference:
        key = (app.name, extra)
        if key not in done:
            run_dir = tmp_path_factory.mktemp(f"reference-{app.name}")
            record = app.execute(run_dir, *extra, hooks=[probe(str(run_dir))])
            assert record["status"] == "finished", record.get("error")
            done[key] = Reference(run_dir, record, list(PROBES[str(run_dir)]))
        return done[key]

    return get


# --------------------------------------------------------------------------------------------- records


def load_checkpoint(path: Path) -> dict[str, Any]:
    with mmengine_checkpoints():
        return torch.load(path, map_location="cpu")


def tensors(node: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor of a nested checkpoint entry, with its path."""
    if torch.is_tensor(node):
        yield prefix, node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from tensors(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from tensors(v, f"{prefix}[{i}]")


def same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN, recursively."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b
