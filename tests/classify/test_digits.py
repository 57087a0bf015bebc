"""The smoke scale's promise: `python -m pws.classify data=digits scale=smoke norm=pws` (and norm=bn) reach
>= 90% test accuracy on scikit-learn's real digits, on 2 CPU cores in about a minute each."""

from __future__ import annotations

from pathlib import Path

import pytest

from pws.classify import run

from .conftest import compose_cfg


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["pws", "bn"])
def test_digits_smoke_reaches_90_percent(tmp_path: Path, norm: str) -> None:
    overrides = ["data=digits", "scale=smoke", f"norm={norm}"]
    record = run(compose_cfg(overrides), tmp_path / norm, overrides)
    assert record["status"] == "finished"
    assert record["epochs_done"] == 6
    assert record["top1_error"] <= 10.0, record["history"]
