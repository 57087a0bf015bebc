"""Fixtures of the detection tests: the Hydra config of a run (compose API) and the generated data sets.

The tests that need mmdetection call ``require_detection_stack()`` (``tests/detection_stack.py``): they fail
when the stack (mmcv with ops, mmengine, mmdet) does not import, unless ``PWS_TESTS_WITHOUT_DETECTION=1``
skips them.
"""

from __future__ import annotations

from collections.abc import Iterator
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


@pytest.fixture
def mmdet_scope() -> Iterator[None]:
    """mmdet as mmengine's default scope during a test that builds from mmdet's registries: the scope is
    process-wide and the last Runner of this worker (any app's, any earlier test's) has set its own."""
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope("mmdet"):
        yield


@pytest.fixture(autouse=True)
def _no_wandb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
