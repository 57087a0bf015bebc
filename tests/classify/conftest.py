"""Shared by the classification app's tests: composing configs, tiny run settings.

The engine's behaviour (resume, preemption, divergence, locks, skip/force, DDP) is tested for both apps in
``tests/engine``; these tests cover what is classification's own: its configs and plan, its model, metric
and EMA, and that its smoke runs learn.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from app_helpers import read_json, run_cli  # noqa: F401  (read_json: for the tests here)
from omegaconf import DictConfig

from pws.classify.config import CONFIG_NAME
from pws.engine.compose import compose_config
from pws.engine.schema import CONFIG_DIR

REPO = CONFIG_DIR.parent

# A run small enough for a unit test: 1 epoch of 2 steps of 8 images.
TINY = [
    "scale=smoke",
    "scale.classify.epochs=1",
    "train.max_steps_per_epoch=2",
    "data.batch_size=8",
    "wandb.mode=disabled",
]
TINY_DATA = {
    "digits": ["data.test_size=32"],
    "synthetic_cifar": ["data.num_train=40", "data.num_test=20"],
    "synthetic_imagenet": [
        "data.num_classes=4", "data.num_train=16", "data.num_val=8", "data.image_size=40",
        "data.crop_size=32", "data.resize_size=36",
    ],
}  # fmt: skip
TINY_MODEL = {"plain_c": ["model.width=0.125"], "resnet_cifar": [], "resnet50": []}


def compose_cfg(overrides: list[str]) -> DictConfig:
    """The ``classify`` config with ``overrides``, through Hydra's compose API."""
    return compose_config(CONFIG_NAME, overrides)


def tiny(model: str = "plain_c", data: str = "digits", norm: str = "pws", *extra: str) -> list[str]:
    return [*TINY, f"model={model}", f"data={data}", f"norm={norm}", *TINY_MODEL[model], *TINY_DATA[data],
            *extra]  # fmt: skip


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the generated data sets of the whole session (generated on first use)."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def run_tiny(data_root: Path, tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """``run_tiny(overrides, run_dir=None)`` runs the app in-process (``pws.classify.run``); the record."""
    from pws.classify import run

    def _run(overrides: list[str], run_dir: Path | None = None) -> dict[str, Any]:
        overrides = [f"data_root={data_root}", *overrides]
        return run(compose_cfg(overrides), run_dir or tmp_path / "run", overrides)

    return _run


@pytest.fixture
def app_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
             ) -> Callable[[list[str]], tuple[int, str, str]]:  # fmt: skip
    """``app_main(args)``: ``python -m pws.classify args`` in this process; (exit code, stdout, stderr)."""
    return lambda args: run_cli("classify", args, monkeypatch, capsys)
