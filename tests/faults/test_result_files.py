"""Faults and bad files on the results side: every file read is named in the error about it, collection goes
on past it, and no number of an unfinished run is shown as a result.

* a ``metrics.json`` that cannot be read (text garbage, binary bytes, a JSON list) is named by the collector,
  the renderer, the table driver and the sweep, and its cell says ``- (unreadable metrics.json: <path>)``;
  the driver does not rerun it unless forced;
* ``experiments/tableN.yaml`` and ``results/published.yaml`` errors name the file and the line; one bad
  table definition stops only that table in ``scripts/collect_results.py``;
* a run whose record says running is ``running`` only while its lock's process is alive, else ``stopped``
  (killed or preempted; resumable); neither it nor a failed run shows its last evaluation in runs.csv, the
  tables or the plots; a diverged run is NaN.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from pws.paper import experiments
from pws.paper.experiments import load_table
from pws.paper.files import BadFile
from pws.results.collect import collect_runs, load_run
from pws.results.report import build
from pws.results.reproduce import plan, reproduce
from pws.results.sweep import collect_sweep, sweep_markdown

REPO = Path(__file__).resolve().parents[2]
published = importlib.import_module("pws.paper.published")  # the module, not the function of that name
TABLE = "table4"
CELL = "plain/lr0.1/bn"  # row bn, column plain/lr0.1

BAD_METRICS = {
    "text-garbage": b"status: finished, top1_error: 6.1 -- not JSON {",
    "binary-bytes": b"\x89PNG\r\n\x1a\n\x00\xff\xfe\xfd\x80",
    "json-list": b'[{"status": "finished", "top1_error": 6.1}]',
}


# -- fabricated run directories ----------------------------------------------------------------------------

def make_run(root: Path, cell: str, seed: int, *, record: dict[str, Any] | None = None,
             content: bytes | None = None, lock: dict[str, Any] | None = None,
             config: dict[str, Any] | None = None) -> Path:
    """``root/<cell>/seed<seed>`` as the engine leaves it: the resolved ``config.yaml`` (table, cell, seed,
    scale), a ``metrics.json`` (``record``, or raw ``content``), and a lock when given."""
    run_dir = root / cell / f"seed{seed}"
    run_dir.mkdir(parents=True)
    cfg = {"table": TABLE, "cell": cell, "seed": seed, "scale": {"name": "smoke"}, **(config or {})}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    if record is not None:
        full = {"task": "classify", "scale": "smoke", "seed": seed, "table": TABLE, "cell": cell,
                "history": [{"epoch": e, "train_loss": 2.0 / e, "test_error": 40.0 / e} for e in (1, 2, 3)],
                **record}
        (run_dir / "metrics.json").write_text(json.dumps(full))
    elif content is not None:
        (run_dir / "metrics.json").write_bytes(content)
    if lock is not None:
        (run_dir / ".lock").write_text(json.dumps(lock))
    return run_dir


def live_lock() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname()}


def dead_lock() -> dict[str, Any]:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return {"pid": proc.pid, "host": socket.gethostname()}


def cells_of(root: Path, **kw: Any) -> dict[str, Any]:
    """cell id -> its printed cell (Table 4 prints one metric per run column)."""
    rep = build(TABLE, root, "smoke", **kw)
    return {c.cell: c for c in rep.result.cells.values()}


def script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_script_{name}", REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _no_wandb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")


# -- 1. an unreadable metrics.json -------------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(BAD_METRICS))
def test_unreadable_metrics_json_is_named_and_collection_goes_on(kind: str, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    bad = make_run(root, CELL, 0, content=BAD_METRICS[kind])
    make_run(root, "plain/lr0.1/pws", 0, record={"status": "finished", "top1_error": 6.25})
    run = load_run(bad)
    assert run.status == "unreadable"
    assert str(bad / "metrics.json") in run.error and "did not get far enough" not in run.error
    assert len(collect_runs(root)) == 2
    cells = cells_of(root)
    assert cells[CELL].ours_text == f"- (unreadable metrics.json: {bad / 'metrics.json'})"
    assert cells[CELL].status == "unreadable"
    assert cells["plain/lr0.1/pws"].ours_text == "6.25"


def test_unreadable_beside_a_finished_seed_is_noted_not_hidden(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    make_run(root, CELL, 0, record={"status": "finished", "top1_error": 5.5})
    bad = make_run(root, CELL, 1, content=BAD_METRICS["binary-bytes"])
    assert cells_of(root)[CELL].ours_text == f"5.50 (1/2 unreadable metrics.json: {bad / 'metrics.json'})"


def test_collect_results_names_unreadable_files_and_exits_nonzero(tmp_path: Path, capsys) -> None:
    root, out = tmp_path / "runs", tmp_path / "out"
    bad = make_run(root, CELL, 0, content=BAD_METRICS["text-garbage"])
    make_run(root, "plain/lr0.1/pws", 0, record={"status": "finished", "top1_error": 6.25})
    rc = script("collect_results").main([str(root), "--out", str(out), "--no-plots"])
    err = capsys.readouterr().err
    assert rc == 1 and str(bad / "metrics.json") in err
    lines = {r["cell"]: r for r in csv.DictReader(io.StringIO((out / "runs.csv").read_text()))}
    assert lines[CELL]["status"] == "unreadable" and str(bad / "metrics.json") in lines[CELL]["error"]
    assert lines["plain/lr0.1/pws"]["status"] == "finished"
    rows = csv.DictReader(io.StringIO((out / "table4.csv").read_text()))
    table = {(r["row"], r["column"]): r for r in rows}
    assert table[("bn", "plain/lr0.1")]["ours"] == f"- (unreadable metrics.json: {bad / 'metrics.json'})"
    assert table[("pws", "plain/lr0.1")]["ours"] == "6.25"


def test_render_table_script_names_unreadable_files(tmp_path: Path, capsys) -> None:
    root = tmp_path / "runs"
    bad = make_run(root, CELL, 0, content=BAD_METRICS["json-list"])
    rc = script("render_table").main([TABLE, "--runs", str(root), "--out", str(tmp_path / "out"),
                                      "--no-plots", "--wandb", "disabled"])
    out = capsys.readouterr().out
    assert rc == 1
    assert f"- (unreadable metrics.json: {bad / 'metrics.json'})" in out
    assert "could not be read" in out


def test_driver_reports_an_unreadable_seed_and_skips_it_unless_forced(tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    base = runs / "smoke" / TABLE
    bad = make_run(base, CELL, 0, content=BAD_METRICS["binary-bytes"])
    t = load_table(TABLE)
    (launch,) = plan(t, "smoke", [0], runs_root=runs, cells=[CELL])
    assert launch.seeds == [] and launch.skipped  # not rerun silently
    assert str(bad / "metrics.json") in launch.unreadable[0]
    assert any("--force" in n and str(bad / "metrics.json") in n for n in launch.skip_notes())
    (forced,) = plan(t, "smoke", [0], runs_root=runs, cells=[CELL], force=True)
    assert forced.seeds == [0] and "force=true" in forced.command  # the app moves the file aside

    printed: list[str] = []
    rep = reproduce(TABLE, seeds=[0], runs_root=runs, out_root=tmp_path / "out", cells=[CELL], plots=False,
                    wandb_mode="disabled", printer=printed.append)
    text = "\n".join(printed)
    assert f"{CELL}: seed 0 not run: unreadable metrics.json: {bad / 'metrics.json'}" in text
    assert "Traceback" not in text and "no metrics.json" not in text
    cells = {c.cell: c for c in rep.result.cells.values()}
    assert cells[CELL].ours_text == f"- (unreadable metrics.json: {bad / 'metrics.json'})"
    assert rep.problems and str(bad / "metrics.json") in rep.problems[0]

    rc = script("reproduce_table").main([TABLE, "--seeds", "0", "--cells", CELL, "--runs", str(runs),
                                         "--out", str(tmp_path / "out2"), "--no-plots"])
    assert rc == 1 and str(bad / "metrics.json") in capsys.readouterr().out


def test_driver_does_not_launch_a_seed_a_live_process_holds(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    base = runs / "smoke" / TABLE
    make_run(base, CELL, 0, record={"status": "running", "top1_error": 30.0}, lock=live_lock())
    make_run(base, CELL, 1, record={"status": "running", "top1_error": 30.0}, lock=dead_lock())
    (launch,) = plan(load_table(TABLE), "smoke", [0, 1], runs_root=runs, cells=[CELL])
    assert launch.seeds == [1]  # the killed one resumes; the live one is left to its process
    assert list(launch.busy) == [0] and str(os.getpid()) in launch.busy[0]


def test_sweep_names_an_unreadable_metrics_json(tmp_path: Path, capsys) -> None:
    root = tmp_path / "sweep"

    def point(gamma: float, lr: float) -> dict[str, Any]:
        return {"norm": {"gamma": gamma}, "optim": {"lr": lr}}

    bad = make_run(root, "g3/lr1", 0, content=BAD_METRICS["text-garbage"], config=point(1e-3, 0.1))
    make_run(root, "g3/lr05", 0, record={"status": "running", "top1_error": 30.0}, lock=live_lock(),
             config=point(1e-3, 0.05))
    make_run(root, "g4/lr1", 0, record={"status": "running", "top1_error": 30.0}, config=point(1e-4, 0.1))
    make_run(root, "g4/lr05", 0, record={"status": "finished", "top1_error": 7.0}, config=point(1e-4, 0.05))
    res = collect_sweep(root, "norm.gamma", "optim.lr", "top1_error")
    assert res.cells[(1e-3, 0.1)].text() == f"- (unreadable metrics.json: {bad / 'metrics.json'})"
    assert res.cells[(1e-3, 0.05)].text() == "- (running)"
    assert res.cells[(1e-4, 0.1)].text() == "- (stopped: killed?, rerun resumes it)"
    assert res.cells[(1e-4, 0.05)].text() == "7.00"
    assert str(bad / "metrics.json") in sweep_markdown(res)
    rc = script("sweep").main(["render", str(root), "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert rc == 1 and str(bad / "metrics.json") in captured.out and "could not be read" in captured.err


# -- 2. table definitions and the published numbers --------------------------------------------------------

BAD_TABLES = {
    # (content, the line the error names, a word of the problem)
    "syntax": (b'table: table9\ntitle: "x"\nrows: [a, b\nmetric: top1_error\n', 4, "YAML syntax error"),
    "binary": (b"table: table9\n\xff\xfe\x00\n", 2, "not UTF-8"),
    "a-list": (b"- table9\n- rows\n", None, "not a table definition"),
    "no-rows": (b"table: table9\napp: pws.classify\nmetric: top1_error\nscales: {smoke: {}}\n", None,
                "'rows'"),
}


@pytest.mark.parametrize("kind", sorted(BAD_TABLES))
def test_a_bad_table_definition_is_named_with_its_line(kind: str, tmp_path: Path) -> None:
    content, line, problem = BAD_TABLES[kind]
    path = tmp_path / "table9.yaml"
    path.write_bytes(content)
    with pytest.raises(BadFile) as info:
        load_table(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}:" + (f"{line}:" if line else ""))
    assert problem in message and "<unicode string>" not in message


def test_collect_results_goes_on_past_a_bad_table_definition(tmp_path: Path, monkeypatch, capsys) -> None:
    exp = tmp_path / "experiments"
    exp.mkdir()
    for name in experiments.TABLES:
        (exp / f"{name}.yaml").write_bytes((REPO / "experiments" / f"{name}.yaml").read_bytes())
    (exp / "table3.yaml").write_text("table: table3\nrows:\n  a: {info: [A]}\n  b: x: y\n")
    monkeypatch.setattr(experiments, "EXPERIMENTS_DIR", exp)
    root, out = tmp_path / "runs", tmp_path / "out"
    make_run(root, CELL, 0, record={"status": "finished", "top1_error": 5.5})
    rc = script("collect_results").main([str(root), "--out", str(out), "--no-plots"])
    err = capsys.readouterr().err
    assert rc == 1
    assert f"{exp / 'table3.yaml'}:4:" in err
    assert (out / "table4.md").is_file()  # the other tables are collected


def test_render_table_script_names_a_bad_definition(tmp_path: Path, capsys) -> None:
    path = tmp_path / "table9.yaml"
    path.write_bytes(BAD_TABLES["syntax"][0])
    rc = script("render_table").main([str(path), "--runs", str(tmp_path), "--no-plots", "--wandb",
                                      "disabled"])
    assert rc == 2 and f"{path}:4:" in capsys.readouterr().err


@pytest.mark.parametrize("content, line", [
    (b"table4:\n  cells:\n    plain/lr0.1/bn: {top1_error: 5.90\n", 4),
    (b"table4:\n  cells:\n    plain/lr0.1/bn: {top1_error: five}\n", None),
    (b"\x00\xff binary\n", 1),
])
def test_a_bad_published_yaml_is_named(content: bytes, line: int | None, tmp_path: Path, monkeypatch,
                                       capsys) -> None:
    path = tmp_path / "published.yaml"
    path.write_bytes(content)
    monkeypatch.setattr(published, "PUBLISHED_FILE", path)
    with pytest.raises(BadFile) as info:
        published.paper_value(TABLE, CELL, "top1_error")
    assert str(info.value).startswith(f"{path}:" + (f"{line}:" if line else ""))
    root = tmp_path / "runs"
    make_run(root, CELL, 0, record={"status": "finished", "top1_error": 5.5})
    rc = script("collect_results").main([str(root), "--out", str(tmp_path / "out"), "--no-plots"])
    assert rc == 1 and str(path) in capsys.readouterr().err


# -- 3 and 4. unfinished runs: running, stopped (killed, preempted), failed; diverged ---------------------

def _statuses(root: Path) -> dict[str, Path]:
    return {
        "plain/lr0.1/none": make_run(root, "plain/lr0.1/none", 0,
                                     record={"status": "running", "top1_error": 31.0}, lock=live_lock()),
        "plain/lr0.1/bn": make_run(root, "plain/lr0.1/bn", 0,
                                   record={"status": "running", "top1_error": 32.0}, lock=dead_lock()),
        "plain/lr0.1/gn": make_run(root, "plain/lr0.1/gn", 0,
                                   record={"status": "running", "top1_error": 33.0}),  # no lock at all
        "plain/lr0.1/sn": make_run(root, "plain/lr0.1/sn", 0, record={
            "status": "running", "top1_error": 34.0, "interrupted": "preempted by SIGTERM at epoch 3"}),
        "plain/lr0.1/wn": make_run(root, "plain/lr0.1/wn", 0, record={
            "status": "failed", "top1_error": 35.0, "error": "RuntimeError: CUDA out of memory"}),
        "plain/lr0.1/pws": make_run(root, "plain/lr0.1/pws", 0,
                                    record={"status": "diverged", "top1_error": math.nan}),
        "plain/lr0.05/pws": make_run(root, "plain/lr0.05/pws", 0,
                                     record={"status": "running", "top1_error": 36.0},
                                     lock={"pid": 1, "host": "another-host.example"}),
    }


EXPECTED = {
    "plain/lr0.1/none": ("running", "- (running)"),
    "plain/lr0.1/bn": ("stopped", "- (stopped: killed?, rerun resumes it)"),
    "plain/lr0.1/gn": ("stopped", "- (stopped: killed?, rerun resumes it)"),
    "plain/lr0.1/sn": ("stopped", "- (stopped: preempted, rerun resumes it)"),
    "plain/lr0.1/wn": ("failed", "- (failed: RuntimeError: CUDA out of memory)"),
    "plain/lr0.1/pws": ("diverged", "NaN"),
    "plain/lr0.05/pws": ("running", "- (running on another-host.example)"),
}


def test_running_is_said_only_of_a_live_process(tmp_path: Path) -> None:
    dirs = _statuses(tmp_path / "runs")
    for cell, run_dir in dirs.items():
        assert load_run(run_dir).status == EXPECTED[cell][0], cell
    bn = load_run(dirs["plain/lr0.1/bn"])
    assert "is gone" in bn.error and "resumes" in bn.error
    assert "no lock file" in load_run(dirs["plain/lr0.1/gn"]).error
    assert "preempted by SIGTERM" in load_run(dirs["plain/lr0.1/sn"]).error


def test_tables_show_the_status_of_unfinished_runs_never_their_last_evaluation(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    _statuses(root)
    cells = cells_of(root)
    for cell, (status, text) in EXPECTED.items():
        assert (cells[cell].status, cells[cell].ours_text) == (status, text), cell
        assert cells[cell].mean is None or math.isnan(cells[cell].mean), cell


def test_a_running_seed_beside_a_finished_one_is_counted_not_averaged(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    make_run(root, CELL, 0, record={"status": "finished", "top1_error": 6.0})
    make_run(root, CELL, 1, record={"status": "running", "top1_error": 50.0}, lock=live_lock())
    make_run(root, CELL, 2, record={"status": "failed", "top1_error": 40.0, "error": "OSError: disk full"})
    c = cells_of(root)[CELL]
    assert c.values == [6.0] and c.ours_text == "6.00 (1/3 failed; 1/3 running)"


def test_runs_csv_has_the_status_and_no_metric_of_an_unfinished_run(tmp_path: Path) -> None:
    root, out = tmp_path / "runs", tmp_path / "out"
    _statuses(root)
    script("collect_results").main([str(root), "--out", str(out), "--no-plots"])
    lines = {r["cell"]: r for r in csv.DictReader(io.StringIO((out / "runs.csv").read_text()))}
    for cell, (status, _) in EXPECTED.items():
        assert lines[cell]["status"] == status, cell
        if status == "diverged":
            assert lines[cell]["top1_error"] == "nan", cell
        else:
            assert lines[cell]["top1_error"] == "", cell  # its last evaluation is not a result
    assert "CUDA out of memory" in lines["plain/lr0.1/wn"]["error"]
    assert "resumes" in lines["plain/lr0.1/bn"]["error"]


def test_plots_show_the_status_of_unfinished_runs(tmp_path: Path, monkeypatch) -> None:
    import matplotlib.figure

    from pws.results import plots

    figures: list[Any] = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: figures.append(self))
    root = tmp_path / "runs"
    _statuses(root)
    make_run(root, "plain/lr0.05/bn", 0, record={"status": "finished", "top1_error": 7.0})
    rep = build(TABLE, root, "smoke")
    plots.plot_vs_paper(rep.result, tmp_path / "vs.png")
    plots.plot_curves(rep.result, rep.runs_by_cell, tmp_path / "curves.png")
    vs_paper, curves = figures
    words = [t.get_text() for ax in vs_paper.axes for t in ax.texts]
    for word in ("running", "stopped", "failed", "NaN"):
        assert word in words, word
    assert "unfinished" not in words
    col = rep.result.columns.index("plain/lr0.1")
    panel = curves.axes[col]  # training loss of the column holding the unfinished runs
    dashed = [ln for ln in panel.get_lines() if ln.get_linestyle() == "--"]
    assert len(dashed) == 5  # running, killed, killed, preempted, failed: the curve so far
    notes = {t.get_text() for t in panel.texts}
    assert {"running", "stopped", "failed"} <= notes
    finished_panel = curves.axes[rep.result.columns.index("plain/lr0.05")]
    assert [ln.get_linestyle() for ln in finished_panel.get_lines()] == ["-", "--"]  # bn done; pws running
