"""The smoke scale's promise: `python -m pws.classify data=digits scale=smoke norm=pws` (and norm=bn) reach
>= 90% test accuracy on scikit-learn's real digits, on 2 CPU cores in about a minute each.

The smoke settings (configs/scale/smoke.yaml: plain_c at 1/4 width, LR 0.01, 10 epochs, batch 32) were
chosen by measurement on the engine, seeds 0-7 each: PWS ended at 1.4-3.9% test error, BN at 0.3-2.5%. The
earlier setting (LR 0.03, 6 epochs) left PWS bimodal over seeds (2.8-89.7% or diverged): docs/fidelity.md
has the numbers and the commands. Both methods are held to the threshold, with no allowance for a failure.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pws.classify import run

from .conftest import compose_cfg


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["pws", "bn"])
def test_digits_smoke_reaches_90_percent(tmp_path: Path, norm: str) -> None:
    overrides = ["data=digits", "scale=smoke", f"norm={norm}", "wandb.mode=disabled"]
    cfg = compose_cfg(overrides)
    record = run(cfg, tmp_path / norm, overrides)
    assert record["status"] == "finished"
    epochs = int(cfg.scale.classify.epochs)
    assert [h["epoch"] for h in record["history"]] == list(range(1, epochs + 1))
    assert record["top1_error"] <= 10.0, [h["top1_error"] for h in record["history"]]
