"""Shared by the results tests: where the repository and the paper are, and a tiny app on the path."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


def paper_path() -> Path | None:
    """The paper's text: $PWS_PAPER, or ../shared/paper.txt beside the checkout."""
    candidates = [os.environ.get("PWS_PAPER"), REPO.parent / "shared" / "paper.txt", "/work/shared/paper.txt"]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    return None


@pytest.fixture
def tiny_app_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment in which `python -m pws_tiny_app` runs (and wandb stays offline, in tmp folders)."""
    path = os.pathsep.join(p for p in [str(HERE), os.environ.get("PYTHONPATH", "")] if p)
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setenv("PWS_REPO_CONFIGS", str(REPO / "configs"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("PWS_JOBS", "2")
    return dict(os.environ)
