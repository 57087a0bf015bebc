"""wandb, offline (no network): a run's summary holds the paper's number for its cell and the difference;
project per table, group per row, name from the cell; the collector logs the reproduced table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pws.records.wandb_run import Tracker, read_offline_run, summary_with_paper
from pws.results.report import render_table

from .tables_fakeruns import make_run


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)  # the default is offline
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_run_summary_holds_paper_and_delta(tmp_path: Path) -> None:
    tracker = Tracker(tmp_path, {"norm": {"method": "pws"}}, table="table4", cell="plain/lr0.05/pws")
    folder = tracker.run_folder
    tracker.log({"train_loss": 0.5, "test_error": 7.0}, step=1)
    record = {"status": "finished", "top1_error": 6.0, "table": "table4", "cell": "plain/lr0.05/pws",
              "history": [{"epoch": 1, "test_error": 7.0}]}
    tracker.finish(record)
    assert folder is not None and folder.name.startswith("offline-run-")
    run = read_offline_run(folder)
    assert (run["project"], run["group"], run["name"]) == ("pws-table4", "pws", "plain/lr0.05/pws")
    s = run["summary"]
    assert s["top1_error"] == 6.0 and s["status"] == "finished"
    assert s["paper/top1_error"] == 6.30
    assert s["delta/top1_error"] == pytest.approx(6.0 - 6.30)
    assert "history" not in s
    assert any(h.get("test_error") == 7.0 for h in run["history"])


def test_paper_delta_from_the_record_alone(tmp_path: Path) -> None:
    """An app that passes only project/group/name gets the comparison from the record's table/cell."""
    tracker = Tracker(tmp_path, {}, project="pws-table1", group="pws", name="bs8/pws")
    folder = tracker.run_folder
    tracker.finish({"status": "finished", "mAP": 70.0, "train_fps": 60.0, "table": "table1",
                    "cell": "bs8/pws"})
    s = read_offline_run(folder)["summary"]
    assert s["paper/mAP"] == 77.66 and s["delta/mAP"] == pytest.approx(70.0 - 77.66)
    assert s["paper/train_fps"] == 52.72 and s["delta/train_fps"] == pytest.approx(60.0 - 52.72)


def test_diverged_cell_and_cell_outside_the_paper() -> None:
    s = summary_with_paper({"status": "diverged", "mAP": math.nan}, "table2", "lr1e-2/vgg16/pws/gamma1e-5")
    assert math.isnan(s["paper/mAP"]) and math.isnan(s["delta/mAP"])
    s = summary_with_paper({"status": "finished", "top1_error": 3.0})
    assert not any(k.startswith(("paper/", "delta/")) for k in s)


def test_disabled_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    tracker = Tracker(tmp_path, {}, table="table4", cell="plain/lr0.1/pws")
    tracker.log({"x": 1})
    tracker.finish({"top1_error": 1.0})
    assert tracker.run_folder is None and not (tmp_path / "wandb").exists()


def test_collector_logs_the_reproduced_table(tmp_path: Path) -> None:
    make_run(tmp_path / "runs", "table4", "plain/lr0.1/pws", 0, "finished", {"top1_error": 6.5})
    rep = render_table("table4", tmp_path / "runs", "smoke", tmp_path / "out", plots=False)
    assert rep.wandb_dir is not None and rep.wandb_dir.parent == tmp_path / "out" / "wandb"
    run = read_offline_run(rep.wandb_dir)
    assert run["project"] == "pws-table4" and run["name"] == "table4-smoke"
    logged = {k: v for h in run["history"] for k, v in h.items()}
    assert logged["reproduced_table/_type"] == "table-file" and logged["reproduced_table/nrows"] == 24
    data = json.loads((rep.wandb_dir / "files" / logged["reproduced_table/path"]).read_text())
    by_cell = {row[data["columns"].index("cell")]: row for row in data["data"]}
    pws = by_cell["plain/lr0.1/pws"]
    assert pws[data["columns"].index("ours")] == "6.50" and pws[data["columns"].index("paper")] == "6.16"


def test_table_and_cell_from_the_config(tmp_path: Path) -> None:
    """An app that hands over its resolved config (with its table/cell keys) gets project, group and the
    paper comparison without saying more; its explicit project/name still win."""
    config = {"table": "table2", "cell": "lr1e-2/vgg16/pws/gamma1e-4", "norm": {"method": "pws"}}
    tracker = Tracker(tmp_path, config, name="explicit")
    folder = tracker.run_folder
    tracker.finish({"status": "finished", "mAP": 75.0})
    run = read_offline_run(folder)
    assert (run["project"], run["group"], run["name"]) == ("pws-table2", "lr1e-2/vgg16/pws/gamma1e-4",
                                                           "explicit")
    assert run["summary"]["paper/mAP"] == 76.5 and run["summary"]["delta/mAP"] == pytest.approx(-1.5)
