"""Render tables from a fabricated folder of run directories and check every printed cell."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest
import yaml

from pws.paper.experiments import load_table
from pws.results.report import render_table

from .tables_fakeruns import make_run

REPO = Path(__file__).resolve().parents[2]
PUBLISHED = yaml.safe_load((REPO / "results" / "published.yaml").read_text())


def _paper(table: str, cell: str, metric: str, decimals: int = 2) -> str:
    v = float(PUBLISHED[table]["cells"][cell][metric])
    return "NaN" if math.isnan(v) else f"{v:.{decimals}f}"


def _md_table(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if line.startswith("| "):
            rows.append([c.strip().replace("\\|", "|") for c in line.strip()[2:-2].split(" | ")])
    return rows


@pytest.fixture
def table4_runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs" / "smoke" / "table4"
    # finished, three seeds
    for s, v in [(0, 6.0), (1, 6.4), (2, 6.2)]:
        make_run(root, "table4", "residual/lr0.1/pws", s, "finished", {"top1_error": v})
    # diverged (the paper's NaN)
    make_run(root, "table4", "residual/lr0.1/none", 0, "diverged", {"top1_error": 1.0})
    # failed with an error message
    make_run(root, "table4", "residual/lr0.1/bn", 0, "failed",
             error="Traceback ...\nRuntimeError: out of memory")
    # one seed finished, one diverged
    make_run(root, "table4", "plain/lr0.1/bn", 0, "finished", {"top1_error": 5.5})
    make_run(root, "table4", "plain/lr0.1/bn", 1, "diverged", {"top1_error": 1.0})
    # started, never finished; and started without even a metrics.json
    make_run(root, "table4", "plain/lr0.05/gn", 0, "running")
    make_run(root, "table4", "plain/lr0.05/sn", 0, "running", write_metrics=False)
    # two finished seeds of another cell
    make_run(root, "table4", "residual/lr0.05/wn", 0, "finished", {"top1_error": 7.0})
    make_run(root, "table4", "residual/lr0.05/wn", 1, "finished", {"top1_error": 8.0})
    # launched by hand, without table/cell: matched through its overrides and saved config
    make_run(root.parent / "byhand", None, None, 0, "finished", {"top1_error": 7.25}, subdir="x",
             overrides=["scale=smoke", "data=digits", "model=plain_c", "optim.lr=0.05", "norm=wn"],
             choices={"norm": "wn", "model": "plain_c", "data": "digits"}, config={"optim": {"lr": 0.05}})
    # a by-hand run of another scale: left out
    make_run(root.parent / "byhand", None, None, 0, "finished", {"top1_error": 1.0}, subdir="y", scale="full",
             overrides=["scale=full", "data=cifar10", "model=plain_c", "optim.lr=0.05", "norm=pws"],
             choices={"norm": "pws", "model": "plain_c", "data": "cifar10"},
             config={"optim": {"lr": 0.05}, "norm": {"gamma": 1e-3}})
    # a cell whose launch failed before any run started (the driver's record)
    sweep = root / "plain/lr0.1/sn"
    sweep.mkdir(parents=True)
    (sweep / "launch.json").write_text(json.dumps({
        "table": "table4", "cell": "plain/lr0.1/sn", "scale": "smoke", "returncode": 1,
        "error": "Could not override 'norm'. No match in the defaults list."}))
    return root.parent


# (row, column) -> (ours, Δ, status, n_seeds); every other cell: not run. Several seeds: Δ says whether the
# paper's number lies in the 95% interval (6.2 ± 4.30 * 0.2 / sqrt(3); 7.5 ± 12.71 * 0.71 / sqrt(2)).
EXPECTED_T4 = {
    ("pws", "residual/lr0.1"): ("6.20 ± 0.20", "-0.30 (inside CI)", "ok", 3),
    ("none", "residual/lr0.1"): ("NaN", "-", "diverged", 1),
    ("bn", "residual/lr0.1"): ("- (failed: RuntimeError: out of memory)", "-", "failed", 0),
    ("bn", "plain/lr0.1"): ("5.50 (1/2 diverged)", "-0.40", "partial", 2),
    # its record says running but no process holds it (no lock): killed, resumable
    ("gn", "plain/lr0.05"): ("- (stopped: killed?, rerun resumes it)", "-", "stopped", 0),
    ("sn", "plain/lr0.05"): ("- (incomplete: no metrics.json)", "-", "incomplete", 0),
    ("wn", "residual/lr0.05"): ("7.50 ± 0.71", "+0.09 (inside CI)", "ok", 2),
    ("wn", "plain/lr0.05"): ("7.25", "-0.13", "ok", 1),
    ("sn", "plain/lr0.1"): ("- (launch failed: Could not override 'norm'. No match in the defaults list.)",
                            "-", "failed", 0),
}


def test_table4_every_cell_markdown_and_csv(table4_runs: Path, tmp_path: Path) -> None:
    table = load_table("table4")
    rep = render_table("table4", table4_runs, "smoke", tmp_path / "out", seeds=None, wandb_mode="disabled")
    md = rep.paths["md"].read_text()
    assert "SMOKE-SCALE" in md.splitlines()[0] and "not the paper's setting" in md.splitlines()[0]
    assert "**Smoke scale, not the paper's setting.**" in md

    rows = _md_table(md)
    header, body = rows[0], rows[2:]
    assert header[0] == "Methods"
    assert header[1:5] == ["Residual, LR 1e-1: ours", "95% CI", "paper", "Δ"]
    assert len(header) == 1 + 4 * 4
    assert [r[0] for r in body] == ["Normal", "BN", "GN", "SN", "WN", "PWS"]
    columns = list(table.columns)
    checked = 0
    for rid, line in zip(table.rows, body, strict=True):
        for k, col in enumerate(columns):
            ours, _, paper, delta = line[1 + 4 * k: 5 + 4 * k]
            cell = f"{col}/{rid}"
            assert paper == _paper("table4", cell, "top1_error"), cell
            exp_ours, exp_delta, _, _ = EXPECTED_T4.get((rid, col), ("- (not run)", "-", "not run", 0))
            assert (ours, delta) == (exp_ours, exp_delta), cell
            checked += 1
    assert checked == 24

    lines = list(csv.DictReader(io.StringIO(rep.paths["csv"].read_text())))
    assert len(lines) == 24
    for line in lines:
        key = (line["row"], line["column"])
        exp_ours, exp_delta, exp_status, exp_n = EXPECTED_T4.get(key, ("- (not run)", "-", "not run", 0))
        assert line["cell"] == f"{line['column']}/{line['row']}"
        assert line["metric"] == "top1_error" and line["table"] == "table4" and line["scale"] == "smoke"
        assert (line["ours"], line["delta"], line["status"], int(line["n_seeds"])) == \
            (exp_ours, exp_delta, exp_status, exp_n), key
        assert line["paper"] == _paper("table4", line["cell"], "top1_error")
    by = {(x["row"], x["column"]): x for x in lines}
    pws = by[("pws", "residual/lr0.1")]
    assert float(pws["ours_mean"]) == pytest.approx(6.2) and float(pws["ours_std"]) == pytest.approx(0.2)
    assert pws["seeds"] == "0 1 2" and pws["n_finished"] == "3"
    assert by[("none", "residual/lr0.1")]["ours_mean"] == "NaN"
    assert by[("bn", "plain/lr0.1")]["n_diverged"] == "1"
    assert by[("bn", "residual/lr0.1")]["reason"] == "failed: RuntimeError: out of memory"

    tex = rep.paths["tex"].read_text()
    assert tex.count("\\\\\n") >= 6 + 2 and "\\begin{tabular}{l" in tex and "smoke-scale" in tex
    assert "6.20 $\\pm$ 0.20" in tex
    for key in ("vs_paper_png", "curves_png"):
        assert rep.paths[key].stat().st_size > 10_000


def test_seed_filter(table4_runs: Path, tmp_path: Path) -> None:
    rep = render_table("table4", table4_runs, "smoke", tmp_path / "out", seeds=[0], plots=False,
                       wandb_mode="disabled")
    lines = {(x["row"], x["column"]): x for x in csv.DictReader(io.StringIO(rep.paths["csv"].read_text()))}
    assert lines[("pws", "residual/lr0.1")]["ours"] == "6.00"
    assert lines[("bn", "plain/lr0.1")]["ours"] == "5.50"


def test_table1_fps_and_table2_both_nan(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    make_run(root / "t1", "table1", "bs8/pws", 0, "finished", {"mAP": 10.123, "train_fps": 3.5})
    make_run(root / "t1", "table1", "bs2/wn", 0, "diverged", {"mAP": 1.0})
    make_run(root / "t2", "table2", "lr1e-2/vgg16/pws/gamma1e-5", 0, "diverged", {"mAP": 1.0})
    make_run(root / "t2", "table2", "lr1e-2/vgg16/pws/gamma1e-4", 0, "finished", {"mAP": 70.0})
    rep1 = render_table("table1", root / "t1", "smoke", tmp_path / "o1", plots=False, wandb_mode="disabled")
    body = _md_table(rep1.paths["md"].read_text())
    header = body[0]
    assert header[:5] == ["Methods", "Training speed (FPS): ours", "95% CI", "paper", "Δ"]
    pws = next(r for r in body if r[0] == "PWS")
    assert pws[1:5] == ["3.50", "unknown (1 seed)", "52.72", "-49.22"]  # FPS of the batch-8 run
    assert pws[-4:] == ["10.12", "unknown (1 seed)", "77.66", "-67.54"]  # mAP at batch 8
    wn = next(r for r in body if r[0] == "WN (g = 1)")
    assert wn[5:9] == ["NaN", "-", "NaN", "both NaN"]                   # batch 2: NaN in both
    rep2 = render_table("table2", root / "t2", "smoke", tmp_path / "o2", plots=False, wandb_mode="disabled")
    rows = _md_table(rep2.paths["md"].read_text())
    assert rows[0] == ["Methods", "LR", "Backbone", "sqrt(2/n) in (12)", "Trainable alpha", "gamma",
                       "mAP (%): ours", "95% CI", "paper", "Δ"]
    last = rows[-1]
    assert last[:6] == ["PWS", "1e-2", "VGG-16", "yes", "yes", "1e-5"]
    assert last[6:] == ["NaN", "-", "NaN", "both NaN"]
    assert rows[-2][6:] == ["70.00", "unknown (1 seed)", "76.50", "-6.50"]
    assert len(rows) == 2 + 13


def test_full_scale_heading_and_reduced_grid(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    make_run(root, "table5", "pws", 0, "finished", {"top1_error": 24.44}, scale="full")
    rep = render_table("table5", root, "full", tmp_path / "o", plots=False, wandb_mode="disabled")
    md = rep.paths["md"].read_text()
    assert "reproduced at full scale" in md.splitlines()[0] and "SMOKE" not in md
    pws = next(r for r in _md_table(md) if r[0] == "PWS")
    assert pws[1:] == ["24.4", "unknown (1 seed)", "24.0", "+0.4"]
    rep = render_table("table4", root, "smoke", tmp_path / "o", grid="demo", plots=False,
                       wandb_mode="disabled")
    assert rep.paths["md"].name == "table4_demo.md"
    assert "Reduced grid `demo`" in rep.paths["md"].read_text()


def test_runs_of_another_grid_below_the_same_folder(tmp_path: Path) -> None:
    """Collecting a broad folder: a cell's runs made with other overrides (the demo grid's 2-epoch runs)
    are not averaged with the runs made with the cell's own overrides."""
    smoke = ["scale=smoke", "data=digits", "model=plain_c", "optim.lr=0.1", "norm=bn"]
    make_run(tmp_path / "runs" / "table4", "table4", "plain/lr0.1/bn", 0, "finished", {"top1_error": 5.0},
             overrides=smoke)
    make_run(tmp_path / "runs" / "table4_demo", "table4", "plain/lr0.1/bn", 0, "finished",
             {"top1_error": 30.0}, overrides=[*smoke, "scale.classify.epochs=2"])
    rep = render_table("table4", tmp_path / "runs", "smoke", tmp_path / "o", plots=False,
                       wandb_mode="disabled")
    row = next(r for r in _md_table(rep.paths["md"].read_text()) if r[0] == "BN")
    assert row[9:13] == ["5.00", "unknown (1 seed)", "5.90", "-0.90"]
    rep = render_table("table4", tmp_path / "runs", "smoke", tmp_path / "o", grid="demo", plots=False,
                       wandb_mode="disabled")
    row = next(r for r in _md_table(rep.paths["md"].read_text()) if r[0] == "BN")
    assert row[1:5] == ["30.00", "unknown (1 seed)", "5.90", "+24.10"]


def test_override_values_compare_by_meaning() -> None:
    from pws.results.collect import parse_override

    same = [("optim.lr=1.0e-2", "optim.lr=0.01"), ("norm.learn_alpha=false", "norm.learn_alpha=False"),
            ("+norm.gamma=1e-3", "norm.gamma=0.001"), ("norm=none", "norm='none'"),
            ("model.backbone_checkpoint=${oc.env:PWS_R50_CKPT_BN,null}",       # as given
             r"model.backbone_checkpoint=$\{oc.env\:PWS_R50_CKPT_BN\,null\}")]  # as Hydra saves it
    for a, b in same:
        assert parse_override(a) == parse_override(b), (a, b)
    assert parse_override("norm=none")[1] == "none"  # a choice named none, not null
    assert parse_override("optim.lr=0.1") != parse_override("optim.lr=0.05")


def test_commit_line_marks_runs_from_uncommitted_code(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    make_run(root, "table5", "pws", 0, "finished", {"top1_error": 24.0}, scale="full")
    make_run(root, "table5", "bn", 0, "finished", {"top1_error": 23.0, "git_dirty": True}, scale="full")
    rep = render_table("table5", root, "full", tmp_path / "o", plots=False, wandb_mode="disabled")
    runs_line = next(line for line in rep.paths["md"].read_text().splitlines() if line.startswith("Runs:"))
    assert " · commit 0123456789, 0123456789-dirty · " in runs_line


def test_a_finished_run_without_a_displayed_metric_names_it(tmp_path: Path) -> None:
    """Table 1's FPS column reads a second metric (train_fps) of the batch-8 run: a run whose record has the
    mAP but not the FPS prints its mAP and, in the FPS column, the metric that is missing."""
    root = tmp_path / "runs"
    make_run(root, "table1", "bs8/pws", 0, "finished", {"mAP": 10.0})
    rep = render_table("table1", root, "smoke", tmp_path / "o", plots=False, wandb_mode="disabled")
    pws = next(r for r in _md_table(rep.paths["md"].read_text()) if r[0] == "PWS")
    assert pws[1] == "- (failed: no train_fps in metrics.json)" and pws[-4] == "10.00"


@pytest.mark.parametrize("history", [[], [{"epoch": 1, "train_loss": math.nan, "test_error": math.nan}]],
                         ids=["no_epoch", "nan_epoch"])
def test_curves_mark_a_run_that_diverged_before_any_finite_value(history: list, tmp_path: Path) -> None:
    """A diverged run whose history holds no finite value (no epoch at all, or NaN ones) is an x at the top
    of its panels (not an empty panel saying 'no runs'); a panel without any run says 'no runs'."""
    from pws.results.plots import curves_figure
    from pws.results.report import build

    root = tmp_path / "runs"
    make_run(root, "table4", "plain/lr0.1/bn", 0, "finished", {"top1_error": 5.0})
    run_dir = make_run(root, "table4", "plain/lr0.05/none", 0, "diverged")
    record = json.loads((run_dir / "metrics.json").read_text())
    record["history"] = history
    (run_dir / "metrics.json").write_text(json.dumps(record))
    rep = build("table4", root, "smoke")
    fig = curves_figure(rep.result, rep.runs_by_cell)
    columns = rep.result.columns
    for ax in fig.axes[columns.index("plain/lr0.05")::len(columns)]:  # its loss and error panels
        (marks,) = ax.collections
        assert marks.get_offsets().tolist() == [[1.0, 0.97]]  # epoch 1, at the top (axes fraction)
        assert not [y for ln in ax.get_lines() for y in ln.get_ydata() if math.isfinite(y)]
        assert "no runs" not in [t.get_text() for t in ax.texts]
    for ax in fig.axes[columns.index("residual/lr0.1")::len(columns)]:
        assert [t.get_text() for t in ax.texts] == ["no runs"]
    assert "diverged (last finite value; at the top: none)" in [t.get_text() for t in fig.legends[0].texts]
