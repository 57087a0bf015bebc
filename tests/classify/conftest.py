"""Shared by the classification app's tests: composing configs, tiny run settings, generated data."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from pws.classify.config import CONFIG_DIR, CONFIG_NAME

REPO = CONFIG_DIR.parent

# A run small enough for a unit test: 1 epoch of 2 steps of 8 images, a quarter of the smoke width.
TINY = [
    "scale=smoke",
    "scale.classify.epochs=1",
    "train.max_steps_per_epoch=2",
    "data.batch_size=8",
]
TINY_DATA = {
    "digits": ["data.train_size=64", "data.test_size=32"],
    "synthetic_cifar": ["data.num_train=40", "data.num_test=20"],
    "synthetic_imagenet": [
        "data.num_classes=4", "data.num_train=16", "data.num_val=8", "data.image_size=40",
        "data.crop_size=32", "data.resize_size=36",
    ],
}
TINY_MODEL = {"plain_c": ["model.width=0.125"], "resnet_cifar": [], "resnet50": []}


def compose_cfg(overrides: list[str]) -> DictConfig:
    """The ``classify`` config with ``overrides``, through Hydra's compose API."""
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3", job_name="classify"):
        return compose(CONFIG_NAME, overrides=overrides)


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
    """``run_tiny(overrides, run_dir=None, **run_kwargs)`` runs the app in-process; returns the record."""
    from pws.classify import run

    def _run(overrides: list[str], run_dir: Path | None = None, **kwargs: Any) -> dict[str, Any]:
        cfg = compose_cfg([f"data_root={data_root}", *overrides])
        return run(cfg, run_dir or tmp_path / "run", overrides, **kwargs)

    return _run


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def model_state(run_dir: Path) -> dict[str, torch.Tensor]:
    state = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    return state["model"]


def app_subprocess(args: list[str], cwd: Path, timeout: float = 300, **popen: Any) -> subprocess.Popen:
    """``python -m pws.classify args`` (or ``args`` as a full command if it starts with ``-m``)."""
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0"}
    command = [sys.executable, *args] if args[0] == "-m" else [sys.executable, "-m", "pws.classify", *args]
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **popen)  # fmt: skip


def same_number(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b
