"""One run, two tables: a cell whose resolved config is that of a run made elsewhere uses that run.

Two reduced grids of Table 4 stand for two tables: ``first`` (BN on the plain net at LR 5e-2) and ``second``
(the same cell, written with a default spelt out and another wandb mode, beside the cell at LR 1e-1). The
real classification app at tiny settings trains the first; the second reuses its run (no run of its own,
the same number in its table, the run named in its note and provenance) and trains only the LR 1e-1 cell.
The other tests fabricate records (no training): a run of the cell's config that is still running is
waited for, a reference whose run no longer has the cell's config is dropped, and the plan counts a run two
tables share once.
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from pws.engine.compose import compose_config
from pws.engine.lock import LOCK_FILE
from pws.paper.experiments import load_table
from pws.records.fingerprint import fingerprint
from pws.results.cost import Throughput, table_cost
from pws.results.reproduce import plan, reproduce
from pws.results.shared import REFERENCE_FILE

REPO = Path(__file__).resolve().parents[2]
# The real classification app at tiny smoke settings: one epoch of 2 steps on 128 digits, tested on 64.
TINY_STEPS = ["scale.classify.epochs=1", "train.max_steps_per_epoch=2", "data.train_size=128",
              "data.test_size=64"]
BN = "plain/lr0.05/bn"
BN_LR01 = "plain/lr0.1/bn"


def _table(tmp_path: Path) -> Path:
    """experiments/table4.yaml with the grids ``first`` and ``second`` (see the module)."""
    raw = yaml.safe_load((REPO / "experiments" / "table4.yaml").read_text())
    raw["grids"] = {
        "first": {"rows": ["bn"], "columns": ["plain/lr0.05"], "overrides": TINY_STEPS},
        "second": {"rows": ["bn"], "columns": ["plain/lr0.05", "plain/lr0.1"],
                   "overrides": [*TINY_STEPS, "optim.momentum=0.9", "wandb.mode=disabled"]},
    }
    path = tmp_path / "table4.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _csv(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    return {(r["row"], r["column"]): r for r in csv.DictReader(io.StringIO(path.read_text()))}


def test_a_cell_of_another_tables_run_is_not_trained_again(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    table, runs, out = _table(tmp_path), tmp_path / "runs", tmp_path / "results"
    kw = dict(scale="smoke", seeds=[0], runs_root=runs, out_root=out, plots=False)
    reproduce(str(table), grid="first", printer=lambda s: None, **kw)
    origin = (runs / "smoke" / "table4_first" / BN / "seed0").resolve()
    made = json.loads((origin / "metrics.json").read_text())
    assert made["status"] == "finished"

    lines: list[str] = []
    report = reproduce(str(table), grid="second", printer=lines.append, **kw)
    base = runs / "smoke" / "table4_second"
    shared_dir = base / BN / "seed0"
    assert not (shared_dir / "metrics.json").exists()  # not trained again
    ref = json.loads((shared_dir / REFERENCE_FILE).read_text())
    assert (shared_dir / ref["run_dir"]).resolve() == origin
    assert (ref["run_table"], ref["run_cell"], ref["table"], ref["cell"]) == ("table4", BN, "table4", BN)
    trained = json.loads((base / BN_LR01 / "seed0" / "metrics.json").read_text())
    assert trained["status"] == "finished" and trained["config"]["optim"]["lr"] == 0.1
    assert "1 runs to do, 1 from runs of the same config elsewhere" in lines[0]
    used = f"seed 0 not trained: the same config's run is used, table4 {BN} seed 0 (finished): {origin}"
    assert any(used in line for line in lines), lines

    rows = _csv(report.paths["csv"])
    row = rows[("bn", "plain/lr0.05")]
    value = f"{made['top1_error']:.2f}"
    assert row["ours"] == f"{value} (seed 0: the run of table4 {BN} (same config, not trained again))"
    assert (row["status"], row["run_dirs"], row["values"]) == ("ok", str(origin), f"0:{made['top1_error']!r}")
    other = rows[("bn", "plain/lr0.1")]
    assert other["ours"] == f"{trained['top1_error']:.2f}" and other["run_dirs"].endswith(f"{BN_LR01}/seed0")

    t = load_table(str(table))
    again = plan(t, "smoke", [0], grid="second", runs_root=runs)
    assert [(ln.seeds, list(ln.shared), ln.done) for ln in again] == [([], [0], []), ([], [], [0])]
    assert [ln.seeds for ln in plan(t, "smoke", [0], grid="second", runs_root=runs, force=True)] == [[0], [0]]


def _fabricate(run_dir: Path, overrides: list[str], status: str, *, locked: bool = False) -> None:
    """A run of ``overrides`` (table4's cell) whose record says ``status``, its lock held by this process."""
    config = OmegaConf.to_container(compose_config("classify", [*overrides, "seed=0"]), resolve=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {"status": status, "scale": "smoke", "seed": 0, "table": "hand", "cell": "made",
              "config": config, "top1_error": 12.5}
    (run_dir / "metrics.json").write_text(json.dumps(record))
    if locked:
        (run_dir / LOCK_FILE).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))


def test_a_running_run_of_the_config_is_waited_for_and_a_changed_cell_is_trained(tmp_path: Path) -> None:
    table, runs = _table(tmp_path), tmp_path / "runs"
    t = load_table(str(table))
    cell = next(c for c in t.cells("smoke", "first"))
    elsewhere = runs / "by-hand" / "seed0"
    _fabricate(elsewhere, list(cell.overrides), "running", locked=True)
    [launch] = plan(t, "smoke", [0], grid="first", runs_root=runs)
    assert launch.seeds == [] and list(launch.waits) == [0] and launch.waits[0].path == elsewhere
    assert "seed 0 not run: the same config is running, hand made seed 0 (running)" in launch.skip_notes()[0]

    _fabricate(elsewhere, list(cell.overrides), "failed")  # a failed run is not used: the cell trains
    [launch] = plan(t, "smoke", [0], grid="first", runs_root=runs)
    assert launch.seeds == [0] and not launch.waits and not launch.shared

    _fabricate(elsewhere, list(cell.overrides), "finished")
    [launch] = plan(t, "smoke", [0], grid="first", runs_root=runs)
    assert launch.seeds == [] and list(launch.shared) == [0]
    # a cell that differs in one value (the grid's epochs) is trained
    [launch] = plan(t, "smoke", [0], grid="first", runs_root=runs,
                    extra_overrides=["scale.classify.epochs=2"])
    assert launch.seeds == [0] and not launch.shared


def test_the_plan_counts_a_shared_run_once(tmp_path: Path) -> None:
    t = load_table(str(_table(tmp_path)))
    measured = [Throughput("plain_c", "bn", 32, 32, 100.0, "test", "cpu, 1 thread")]
    counted: dict[str, str] = {}
    first = table_cost(t, "smoke", 1, measured, grid="first", counted=counted)
    second = table_cost(t, "smoke", 1, measured, grid="second", counted=counted)
    [one] = first.cells
    shared, trained = second.cells
    assert one.hours and one.hours > 0 and one.shared_with is None
    assert (shared.cell, shared.shared_with, shared.hours) == (BN, f"table4 {BN}", 0.0)
    assert trained.shared_with is None and second.hours == trained.hours == one.hours
    assert len(counted) == 2


def test_run_only_keys_leave_the_fingerprint_alone() -> None:
    config = OmegaConf.to_container(compose_config("classify", ["norm=bn"]), resolve=True)
    moved = {**config, "runs_root": "elsewhere", "table": "t", "cell": "c", "force": True,
             "wandb": {"mode": "online"}, "data": {**config["data"], "root": "/data", "num_workers": 8}}
    assert fingerprint(moved) == fingerprint(config)
    for changed in ({**config, "seed": 1}, {**config, "optim": {**config["optim"], "lr": 0.2}},
                    {**config, "data": {**config["data"], "batch_size": 64}}):
        assert fingerprint(changed) != fingerprint(config)
