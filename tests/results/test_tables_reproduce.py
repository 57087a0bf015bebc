"""`make reproduce-table4 SCALE=smoke` end to end with the real classification app, on a reduced grid.

CI time: the whole smoke Table 4 is 24 runs of 12 epochs (about an hour on 2 cores), so the test runs
its `ci` grid (experiments/table4.yaml: BN and PWS on the plain net at LR 5e-2, one epoch of 4 steps)
through the same Makefile target, driver, Hydra multirun, app, collector and renderer; then runs it again
to check that finished cells are skipped.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

HAVE_APP = (importlib.util.find_spec("pws.classify") is not None
            and (REPO / "configs" / "classify.yaml").is_file())
pytestmark = [
    pytest.mark.skipif(not HAVE_APP, reason="the classification app (python -m pws.classify) is not there"),
    pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine"),
]


def test_make_reproduce_table4_smoke(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    runs, out = tmp_path / "runs", tmp_path / "results"
    cmd = ["make", "-s", "-C", str(REPO), "reproduce-table4", "SCALE=smoke", "SEEDS=0",
           f"PY={sys.executable}", f"REPRO_ARGS=--grid ci --runs {runs} --out {out}"]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    base = runs / "smoke" / "table4_ci"
    for cell in ("plain/lr0.05/bn", "plain/lr0.05/pws"):
        rec = json.loads((base / cell / "seed0" / "metrics.json").read_text())
        assert rec["table"] == "table4" and rec["cell"] == cell and rec["scale"] == "smoke"
        assert rec["status"] in ("finished", "diverged")
        assert list((base / cell / "seed0" / "wandb").glob("offline-run-*"))
    md = (out / "smoke" / "table4_ci.md").read_text()
    assert "SMOKE-SCALE" in md and "Reduced grid `ci`" in md
    text = (out / "smoke" / "table4_ci.csv").read_text()
    rows = {(r["row"], r["column"]): r for r in csv.DictReader(io.StringIO(text))}
    assert set(rows) == {("bn", "plain/lr0.05"), ("pws", "plain/lr0.05")}
    for r in rows.values():
        assert r["status"] in ("ok", "diverged") and r["paper"] in ("7.67", "6.30")
        if r["status"] == "ok":
            assert 0.0 <= float(r["ours_mean"]) <= 100.0
            assert float(r["delta"]) == pytest.approx(float(r["ours_mean"]) - float(r["paper"]), abs=0.006)
    for name in ("table4_ci.tex", "table4_ci_vs_paper.png", "table4_ci_curves.png"):
        assert (out / "smoke" / name).stat().st_size > 0
    assert "Files:" in proc.stdout and "wandb (table)" in proc.stdout

    again = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0
    assert "0 runs to do" in again.stdout and again.stdout.count("done already") == 2
