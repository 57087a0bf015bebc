"""The wandb dashboards as code (pws.results.dashboard, scripts/wandb_dashboard.py), without network.

Every panel of every table's report must name a key the runs really log. The keys are read from a real
classification run logged offline (its ``run-<id>.wandb`` file: summary, history, config); those of the
detection tables from the same engine's keys, the detection evaluator's metric names
(``pws.paper.metrics.DETECTION``) and the tracker's own ``paper/*`` function.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from pws.paper.experiments import TABLES, load_table
from pws.records.wandb_run import _offline_records, read_offline_run, summary_with_paper
from pws.results.dashboard import (
    build_report,
    dashboard_spec,
    main,
    panel_keys,
    report_keys,
)

CLASSIFY_METRICS = ("top1_error", "top5_error", "test_loss")  # what the classification record holds
TABLE, CELL, ROW = "table4", "plain/lr0.1/pws", "pws"


def _config(folder: Path) -> dict[str, Any]:
    """The config an offline run logged (its ``run`` record), nested keys joined with dots; its tags."""
    out: dict[str, Any] = {}

    def flatten(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                flatten(f"{prefix}.{k}" if prefix else k, v)
        else:
            out[prefix] = value

    for rec in _offline_records(folder):
        if rec.WhichOneof("record_type") == "run":
            for item in rec.run.config.update:
                flatten(item.key, json.loads(item.value_json))  # offline: the value itself
            out["_tags"] = list(rec.run.tags)
    return out


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 1-epoch classification run of Table 4's cell, logged to wandb offline; what its run file holds."""
    from pws.classify import run
    from pws.classify.config import CONFIG_NAME
    from pws.engine.compose import compose_config

    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_SILENT", "true")
    tmp = tmp_path_factory.mktemp("dashboard")
    overrides = [
        f"data_root={tmp / 'data'}", "scale=smoke", "scale.classify.epochs=1", "train.max_steps_per_epoch=2",
        "data.batch_size=8", "data=digits", "data.test_size=32", "model=plain_c", "model.width=0.125",
        "norm=pws", "wandb.mode=offline", f"table={TABLE}", f"row={ROW}", f"cell={CELL}",
    ]  # fmt: skip
    try:
        record = run(compose_config(CONFIG_NAME, overrides), tmp / "run", overrides)
    finally:
        mp.undo()
    assert record["status"] == "finished", record.get("error")
    (folder,) = (tmp / "run" / "wandb").glob("offline-run-*")
    out = read_offline_run(folder)
    out["config"] = _config(folder)
    out["history_keys"] = {k for h in out["history"] for k in h}
    return out


def logged_keys(table: str, run: dict[str, Any]) -> set[str]:
    """The summary and history keys the runs of ``table`` log, from the offline classification run.

    Classification tables: the run's keys, its cell's ``paper/*``/``delta/*`` replaced by those of every
    cell of ``table`` (the tracker's own function). Detection tables: the engine's keys of that run (train
    loss, epochs, throughput), the classification metrics replaced by detection's (summary: ours; history:
    ``val/`` + mmdet's names).
    """
    from pws.paper.metrics import DETECTION  # ours -> mmdet's name

    t = load_table(table)
    summary = {k for k in run["summary"] if not k.startswith(("paper/", "delta/"))}
    history = set(run["history_keys"])
    if t.app == "pws.detect":
        summary = (summary - set(CLASSIFY_METRICS)) | set(DETECTION)
        history = {k for k in history if not k.startswith("val/")} | {f"val/{k}" for k in DETECTION.values()}
    for cell in t.cells("full"):
        summary |= set(summary_with_paper({}, table, cell.id))
    return summary | history


def unlogged(spec: dict[str, Any], keys: set[str]) -> list[str]:
    return sorted(panel_keys(spec) - keys)


def test_the_run_logs_what_the_table4_report_reads(logged: dict[str, Any]) -> None:
    """The project, group, config keys of the run-set filter, and each curve's x beside its y."""
    spec = dashboard_spec(TABLE, "someone", scale="smoke")
    assert (logged["project"], logged["group"], logged["name"]) == (spec["project"], ROW, CELL)
    assert logged["config"]["cell"] == CELL and "smoke" in logged["config"]["_tags"]
    (section,) = [s for s in spec["sections"] if f"'{CELL}'" in s["runset"]["filters"]]
    assert section["runset"]["filters"].endswith("Tags() in ['smoke']")
    assert section["runset"]["groupby"] == ["group"]
    for panel in section["panels"]:
        if panel["type"] == "LinePlot":  # plotted against x: both in one history row
            for y in panel["y"]:
                assert any(panel["x"] in h and y in h for h in logged["history"]), (panel["x"], y)
    assert logged["summary"]["paper/top1_error"] == 6.16


@pytest.mark.parametrize("table", TABLES)
def test_every_panel_names_a_key_the_runs_log(logged: dict[str, Any], table: str) -> None:
    keys = logged_keys(table, logged)
    spec = dashboard_spec(table, "someone", scale="smoke")
    assert not unlogged(spec, keys), f"{table}: panels name keys no run logs: {unlogged(spec, keys)}"
    report = build_report(spec)  # the wandb_workspaces report that is saved, read back from its panels
    assert report_keys(report) == panel_keys(spec)
    assert not report_keys(report) - keys


def test_a_wrong_key_is_caught(logged: dict[str, Any]) -> None:
    keys = logged_keys(TABLE, logged)
    spec = dashboard_spec(TABLE, "someone")
    spec["sections"][0]["panels"][0]["metrics"].append("top1_eror")
    spec["sections"][1]["panels"][-1]["y"] = ["val/accuracy"]
    assert unlogged(spec, keys) == ["top1_eror", "val/accuracy"]
    assert {"top1_eror", "val/accuracy"} <= report_keys(build_report(spec))


@pytest.mark.parametrize("table", TABLES)
def test_one_section_per_run_column_a_bar_per_printed_column(table: str) -> None:
    t = load_table(table)
    spec = dashboard_spec(table, "someone")
    assert spec["project"] == f"pws-{table}" and spec["scale"] == "full"
    assert len(spec["sections"]) == len(t.columns)
    bars = [p for s in spec["sections"] for p in s["panels"] if p["type"] == "BarPlot"]
    printed = [d.metric for c in t.columns for d in t.display if d.column == c]
    assert [b["metrics"][0] for b in bars] == printed
    assert all(b["metrics"][1] == f"paper/{b['metrics'][0]}" for b in bars)  # the paper has every column
    for section, column in zip(spec["sections"], t.columns, strict=True):
        for row in t.rows:
            assert repr(t.cell_id(column, row)) in section["runset"]["filters"]
        assert any(p["type"] == "LinePlot" and p["y"] == ["epoch/train_loss"] for p in section["panels"])


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network used: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_dry_run_writes_the_spec_without_network(no_network: None, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    out = tmp_path / "spec" / "table4.json"
    assert main(["table4", "--entity", "someone", "--scale", "smoke", "--dry-run", "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == dashboard_spec("table4", "someone", scale="smoke")
    assert main(["table1", "--entity", "someone", "--project", "mine", "--dry-run"]) == 0
    spec = json.loads(capsys.readouterr().out)
    assert spec["project"] == "mine" and all(s["runset"]["project"] == "mine" for s in spec["sections"])
    assert main(["all", "--entity", "someone", "--dry-run"]) == 0
    assert [s["table"] for s in json.loads(capsys.readouterr().out)] == list(TABLES)


def test_bad_arguments(no_network: None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["table9", "--entity", "someone", "--dry-run"])
    assert e.value.code == 2 and "unknown table table9" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["table1", "table2", "--entity", "someone", "--project", "mine", "--dry-run"])
    assert main(["table4", "--entity", "someone", "--grid", "nope", "--dry-run"]) == 2
    assert "no grid 'nope'" in capsys.readouterr().err
