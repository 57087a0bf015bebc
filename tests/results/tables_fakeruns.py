"""Fabricated run directories in the shape the apps leave (``metrics.json`` + ``.hydra/``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml


def make_run(
    root: Path,
    table: str | None,
    cell: str | None,
    seed: int,
    status: str,
    metrics: dict[str, float] | None = None,
    /,
    *,
    scale: str = "smoke",
    overrides: list[str] | None = None,
    choices: dict[str, str] | None = None,
    config: dict[str, Any] | None = None,
    error: str | None = None,
    epochs: int = 4,
    subdir: str | None = None,
    write_metrics: bool = True,
) -> Path:
    """One run dir at ``root/<cell>/seed<seed>`` (or ``root/<subdir>``)."""
    run_dir = root / (subdir or f"{cell}/seed{seed}")
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    ov = list(overrides or [])
    if table is not None:
        ov += [f"table={table}", f"cell={cell}"]
    ov += [f"seed={seed}"]
    cfg = {"table": table, "cell": cell, "seed": seed, "force": False, "scale": {"name": scale}}
    cfg.update(config or {})
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(ov))
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run_dir / ".hydra" / "hydra.yaml").write_text(
        yaml.safe_dump({"hydra": {"runtime": {"choices": {"scale": scale, **(choices or {})}}}}))
    if not write_metrics:
        return run_dir
    record: dict[str, Any] = {
        "task": "classify", "status": status, "scale": scale, "seed": seed, "table": table, "cell": cell,
        "overrides": ov, "git_commit": "0123456789abcdef",
    }
    final = dict(metrics or {})
    if status == "diverged":
        final = {k: math.nan for k in final} or {"top1_error": math.nan}
    record.update(final)
    n = epochs if status != "diverged" else 2
    record["history"] = [
        {"epoch": e, "train_loss": 2.0 / e + 0.01 * seed if status != "diverged" or e < n else math.nan,
         "test_error": 50.0 / e + seed}
        for e in range(1, n + 1)
    ]
    if error:
        record["error"] = error
    (run_dir / "metrics.json").write_text(json.dumps(record, indent=1))
    return run_dir
