"""Tables 1 and 3 rendered from real detection runs: ``python -m pws.detect`` on a cell of each table (the
cell's own overrides, a tiny data set), then the table driver's collector and renderer on that runs folder.
Every printed cell of the run must be the number of its metrics.json: VOC07's mAP and the training FPS
(Table 1's batch-8 cell, the FPS column's second metric), COCO's three box APs (Table 3); mmdet reports
fractions, the record and the table hold %. (One tiny epoch detects nothing: the APs are 0.00, the FPS is
the number that tells a cell read from the wrong key.)"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pytest
from app_helpers import run_cli
from detection_stack import require_detection_stack

from pws.paper.experiments import load_table
from pws.records.metrics_file import read_metrics
from pws.results.report import render_table

require_detection_stack()

# 16 training images (Table 1's batch 8: 2 iterations, the first the FPS warm-up), 2 test images, one epoch
TINY = ["scale.detect.synthetic.num_train=16", "scale.detect.synthetic.num_test=2", "scale.detect.epochs=1",
        "wandb.mode=disabled"]


def _run_cell(table: str, cell_id: str, runs: Path, data_dir: Path, monkeypatch, capsys) -> dict:
    """The cell's seed-0 run where the driver puts it (runs/smoke/<table>/<cell>/seed0); its record."""
    (cell,) = [c for c in load_table(table).cells("smoke") if c.id == cell_id]
    run_dir = runs / "smoke" / table / cell_id / "seed0"
    args = [*cell.overrides, f"table={table}", f"cell={cell_id}", "seed=0", f"data_root={data_dir}", *TINY,
            f"hydra.run.dir={run_dir}"]
    code, out, err = run_cli("detect", args, monkeypatch, capsys)
    assert code == 0, out[-2000:] + err[-2000:]
    record = read_metrics(run_dir)
    assert record["status"] == "finished" and (record["table"], record["cell"]) == (table, cell_id)
    return record


def _rendered(table: str, runs: Path, out: Path) -> dict[tuple[str, str], dict[str, str]]:
    rep = render_table(table, runs, "smoke", out, plots=False, wandb_mode="disabled")
    lines = csv.DictReader(io.StringIO(rep.paths["csv"].read_text()))
    return {(r["cell"], r["metric"]): r for r in lines}


@pytest.mark.slow
def test_table1_and_table3_from_real_runs(tmp_path: Path, data_dir: Path, monkeypatch, capsys) -> None:
    runs = tmp_path / "runs"
    voc = _run_cell("table1", "bs8/pws", runs, data_dir, monkeypatch, capsys)
    assert voc["mAP"] == pytest.approx(100 * voc["evaluated"]["pascal_voc/mAP"]) and voc["train_fps"] > 0
    coco = _run_cell("table3", "ssd/1x/bn", runs, data_dir, monkeypatch, capsys)

    for table, record, keys in (("table1", voc, ["mAP", "train_fps"]),
                                ("table3", coco, ["bbox_mAP", "bbox_mAP_50", "bbox_mAP_75"])):
        rows = _rendered(table, runs / "smoke" / table, tmp_path / table)
        for key in keys:
            value = record[key]
            assert math.isfinite(value), (table, key, record["evaluated"])
            row = rows[(record["cell"], key)]
            decimals = load_table(table).decimals
            assert (row["status"], row["n_seeds"], row["seeds"]) == ("ok", "1", "0"), row
            assert row["ours"] == f"{value:.{decimals}f}" and float(row["ours_mean"]) == pytest.approx(value)
            assert row["run_dirs"] == str(runs / "smoke" / table / record["cell"] / "seed0")
        # the other cells have no run: not run, no number
        assert all(r["ours"].startswith("-") for (cell, _), r in rows.items() if cell != record["cell"])
