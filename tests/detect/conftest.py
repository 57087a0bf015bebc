"""Fixtures of the detection tests: the Hydra config of a run (compose API) and the generated data sets.

The tests that need mmdetection skip with a reason when the stack (mmcv with ops, mmengine, mmdet) is not
installed, except where it is meant to be installed: in CI (``CI`` set) or with ``PWS_REQUIRE_STACK=1`` a
stack that does not import FAILS them (a broken install must not turn the detection tests into skips).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

from pws.engine.compose import compose_config


def compose_detect(overrides: list[str] | None = None):
    """The composed config of ``python -m pws.detect <overrides>``."""
    return compose_config("detect", overrides or [])


@pytest.fixture
def compose_cfg():
    return compose_detect


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the runs of this session generate their synthetic sets (shared: generated once)."""
    return tmp_path_factory.mktemp("detect-data")


@pytest.fixture(autouse=True)
def _no_wandb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")


def require_stack() -> None:
    """Skip unless mmcv (with its compiled ops), mmengine and mmdet import (fail instead in CI)."""
    if os.environ.get("CI") or os.environ.get("PWS_REQUIRE_STACK"):
        for module in ("mmengine", "mmcv", "mmcv.ops", "mmdet"):
            importlib.import_module(module)  # an ImportError here fails the test
        return
    pytest.importorskip(
        "mmengine", reason="mmengine not installed (make install installs the detection stack)"
    )
    pytest.importorskip("mmcv", reason="mmcv not installed (make install builds it: scripts/install_mmcv.sh)")
    pytest.importorskip("mmcv.ops", reason="mmcv without compiled ops (mmcv-lite?): scripts/install_mmcv.sh")
    pytest.importorskip("mmdet", reason="mmdet not installed (make install installs the detection stack)")
