"""The reproduce driver and the sweeps through Hydra's launchers: joblib (parallel jobs on this machine)
and submitit's local executor (the SLURM path minus the cluster).

The real classification app at tiny smoke settings runs a reduced Table 4 through joblib (its plain net
without a norm at LR 1e6 diverges for real) and a sweep through both launchers; the whole `make
reproduce-table4` path is in test_tables_reproduce.py. The other tests here use a tiny app of the apps'
contract (tests/results/pws_tiny_app: keys table/cell/seed/force, metrics.json, skip-if-done, wandb
Tracker; a failure on request, ``PWS_TINY_FAIL=<cell>``; a linear net on raw inputs that blows up).
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from figure_checks import assert_drawn

from pws.paper.experiments import load_table
from pws.results import reproduce as reproduce_module
from pws.results.reproduce import default_cell_jobs, parallel_cells_env, plan, reproduce
from pws.results.sweep import collect_sweep, render_sweep, sweep_command

REPO = Path(__file__).resolve().parents[2]
QUIET = {"printer": lambda s: None}
# The real classification app at tiny smoke settings: one epoch of 2 steps on 128 digits, tested on 64.
TINY_STEPS = ["scale.classify.epochs=1", "train.max_steps_per_epoch=2", "data.train_size=128",
              "data.test_size=64"]
TINY_CLASSIFY = ["scale=smoke", "data=digits", "model=plain_c", "norm=pws", *TINY_STEPS]


def _tiny_table(tmp_path: Path, *, real_app: bool = False) -> Path:
    """experiments/table4.yaml with a two-cell grid `tiny` (plain conv and PWS at LR 0.1), for the tiny
    app or (``real_app``) for the real one at tiny settings, its plain conv at LR 1e6 (it diverges)."""
    raw = yaml.safe_load((REPO / "experiments" / "table4.yaml").read_text())
    if real_app:
        raw["scales"]["smoke"]["overrides"] = [*raw["scales"]["smoke"]["overrides"], *TINY_STEPS]
        raw["rows"]["none"]["overrides"] = ["norm=none", "optim.lr=1.0e6"]
    else:
        raw["app"] = "pws_tiny_app"
        raw["scales"]["smoke"]["overrides"] = ["scale=smoke", "epochs=2"]
        for col in raw["columns"].values():  # the tiny app has no model group: keep only the LR
            col["overrides"] = [o for o in col["overrides"] if o.startswith("optim.lr")]
    raw["grids"] = {"tiny": {"rows": ["none", "pws"], "columns": ["plain/lr0.1"],
                             "note": "two methods at LR 0.1, tiny settings"}}
    path = tmp_path / "table4.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _csv(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    return {(r["row"], r["column"]): r for r in csv.DictReader(io.StringIO(path.read_text()))}


@pytest.mark.parametrize(("launcher", "real_app"),
                         [("joblib", True), ("submitit_local", False)])
def test_reproduce_through_launcher(launcher: str, real_app: bool, tmp_path: Path, request, monkeypatch
                                    ) -> None:  # fmt: skip
    """A reduced Table 4 (2 cells x 2 seeds) through each launcher: the real classification app through
    joblib's pool (40 s); the tiny app through submitit's local executor, which starts a process per run
    (the real app goes through it in test_classify_sweep_through_launcher)."""
    monkeypatch.setenv("PWS_JOBS", "2")
    if not real_app:
        request.getfixturevalue("tiny_app_env")
    monkeypatch.setenv("WANDB_MODE", "offline" if launcher == "submitit_local" else "disabled")
    table = _tiny_table(tmp_path, real_app=real_app)
    runs, out = tmp_path / "runs", tmp_path / "results"
    rep = reproduce(str(table), scale="smoke", seeds=[0, 1], launcher=launcher, grid="tiny", runs_root=runs,
                    out_root=out, plots=False, **QUIET)
    base = runs / "smoke" / "table4_tiny"
    config = {"joblib": "pws_joblib", "submitit_local": "pws_submitit_local"}[launcher]
    for cell, status in (("plain/lr0.1/none", "diverged"), ("plain/lr0.1/pws", "finished")):
        for seed in (0, 1):
            run_dir = base / cell / f"seed{seed}"
            rec = json.loads((run_dir / "metrics.json").read_text())
            assert (rec["table"], rec["cell"], rec["seed"], rec["status"]) == ("table4", cell, seed, status)
            assert rec["task"] == "classify" and rec["data"] == ("digits" if real_app else "gaussians")
            hydra_cfg = yaml.safe_load((run_dir / ".hydra" / "hydra.yaml").read_text())
            assert hydra_cfg["hydra"]["runtime"]["choices"]["hydra/launcher"] == config
        launch = json.loads((base / cell / "launch.json").read_text())
        assert launch["returncode"] == 0 and f"hydra/launcher={config}" in launch["command"]
    if launcher == "submitit_local":
        assert len(list((base / "plain/lr0.1/pws" / ".submitit").glob("*/*_result.pkl"))) == 2
        assert list((base / "plain/lr0.1/pws/seed0/wandb").glob("offline-run-*/run-*.wandb"))
    rows = _csv(rep.paths["csv"])
    assert rows[("none", "plain/lr0.1")]["ours"] == "NaN"  # no norm (LR 1e6, or raw inputs): it blows up
    pws = rows[("pws", "plain/lr0.1")]
    assert pws["status"] == "ok" and pws["n_seeds"] == "2" and " ± " in pws["ours"]
    assert rep.paths["md"] == out / "smoke" / "table4_tiny.md"

    # Rerun: every cell is done, nothing is launched; force reruns all (the apps' force=true).
    t = load_table(str(table))
    assert all(ln.skipped for ln in plan(t, "smoke", [0, 1], grid="tiny", runs_root=runs, launcher=launcher))
    forced = plan(t, "smoke", [0, 1], grid="tiny", runs_root=runs, launcher=launcher, force=True)
    assert all(ln.seeds == [0, 1] and "force=true" in ln.command for ln in forced)


def test_resume_failed_cell_and_missing_app(tmp_path: Path, tiny_app_env, monkeypatch) -> None:
    """A broken sweep resumes where it stopped (finished seeds are not run again, the unfinished and the
    failed ones are); a failing cell and an app that is not installed print a dash and the reason."""
    monkeypatch.setenv("WANDB_MODE", "disabled")
    table = _tiny_table(tmp_path)
    runs, out = tmp_path / "runs", tmp_path / "results"
    kw = dict(scale="smoke", grid="tiny", runs_root=runs, out_root=out, plots=False, **QUIET)
    monkeypatch.setenv("PWS_TINY_FAIL", "plain/lr0.1/pws")
    rep = reproduce(str(table), seeds=[0, 1], **kw)
    rows = _csv(rep.paths["csv"])
    failed = "- (failed: RuntimeError: requested failure (PWS_TINY_FAIL))"
    assert rows[("pws", "plain/lr0.1")]["ours"] == failed
    assert rows[("none", "plain/lr0.1")]["ours"] == "NaN"
    base = runs / "smoke" / "table4_tiny"
    done_before = (base / "plain/lr0.1/none/seed0/metrics.json").stat().st_mtime_ns
    # seed 1 of the diverged cell killed mid-run: its record says running
    rec_path = base / "plain/lr0.1/none/seed1/metrics.json"
    rec_path.write_text(json.dumps({**json.loads(rec_path.read_text()), "status": "running"}))
    monkeypatch.delenv("PWS_TINY_FAIL")
    todo = {ln.cell.id: ln.seeds for ln in plan(load_table(str(table)), "smoke", [0, 1], grid="tiny",
                                                 runs_root=runs)}
    assert todo == {"plain/lr0.1/none": [1], "plain/lr0.1/pws": [0, 1]}
    rep = reproduce(str(table), seeds=[0, 1], **kw)
    assert (base / "plain/lr0.1/none/seed0/metrics.json").stat().st_mtime_ns == done_before
    rows = _csv(rep.paths["csv"])
    assert rows[("pws", "plain/lr0.1")]["status"] == "ok" and rows[("pws", "plain/lr0.1")]["n_seeds"] == "2"
    assert rows[("none", "plain/lr0.1")]["n_diverged"] == "2"

    # The table's definition changed since (3 epochs instead of 2): the finished runs are stale, rerun
    # with force=true; with --override epochs=2 they match again.
    raw = yaml.safe_load(table.read_text())
    raw["scales"]["smoke"]["overrides"] = ["scale=smoke", "epochs=3"]
    table.write_text(yaml.safe_dump(raw, sort_keys=False))
    launches = plan(load_table(str(table)), "smoke", [0, 1], grid="tiny", runs_root=runs)
    assert all(ln.stale == [0, 1] and ln.seeds == [0, 1] and "force=true" in ln.command for ln in launches)
    launches = plan(load_table(str(table)), "smoke", [0, 1], grid="tiny", runs_root=runs,
                    extra_overrides=["epochs=2"])
    assert all(ln.skipped for ln in launches)

    raw["app"] = "pws_no_such_app"
    table.write_text(yaml.safe_dump(raw))
    rep = reproduce(str(table), seeds=[0], **{**kw, "runs_root": tmp_path / "runs2"})
    rows = _csv(rep.paths["csv"])
    for r in rows.values():
        assert r["status"] == "failed" and "pws_no_such_app is not available" in r["reason"]


def test_sweeps_table_heatmap_and_collect_script(tmp_path: Path, tiny_app_env, monkeypatch) -> None:
    """A gamma x LR sweep as one Hydra multirun through the joblib launcher, a method x LR sweep through the
    local one; their tables and heatmaps; scripts/collect_results.py on the plain multirun folder."""
    monkeypatch.setenv("WANDB_MODE", "disabled")
    sweep_dir = tmp_path / "sweep-gamma"
    cmd = sweep_command("pws_tiny_app", ["scale=smoke", "norm=pws", "epochs=2"],
                        ("norm.gamma", ["1e-5", "1e-3"]), ("optim.lr", ["0.05", "0.1"]), seeds=[0],
                        sweep_dir=sweep_dir, launcher="joblib")
    subprocess.run(cmd, check=True, cwd=REPO, capture_output=True, timeout=600)
    assert sorted(str(p.relative_to(sweep_dir).parent) for p in sweep_dir.rglob("metrics.json")) == [
        "gamma0.001/lr0.05/seed0", "gamma0.001/lr0.1/seed0",
        "gamma1e-05/lr0.05/seed0", "gamma1e-05/lr0.1/seed0"]
    res, paths = render_sweep(sweep_dir, "norm.gamma", "optim.lr", "top1_error", out_dir=tmp_path / "out",
                              stem="sweep_gamma", title="tiny", yorder=["1e-5", "1e-3"],
                              xorder=["0.05", "0.1"])
    assert res.yvals == [1e-5, 1e-3] and res.xvals == [0.05, 0.1]
    assert all(len(c.values) == 1 for c in res.cells.values())
    md = paths["md"].read_text().splitlines()
    assert md[0] == "# Sweep: tiny (smoke scale)"
    table_lines = [ln for ln in md if ln.startswith("| ")]
    assert table_lines[0] == "| norm.gamma \\ optim.lr | 0.05 | 0.1 |" and len(table_lines) == 4
    for line, gamma in zip(table_lines[2:], ("1e-05", "0.001"), strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")]
        for cell, lr in zip(cells[1:], ("0.05", "0.1"), strict=True):
            run_dir = sweep_dir / f"gamma{gamma}" / f"lr{lr}" / "seed0"
            record = json.loads((run_dir / "metrics.json").read_text())
            assert float(cell) == pytest.approx(record["top1_error"], abs=0.005), (gamma, lr)
    # the heatmap: the best cell in viridis_r's yellow, the worst in its purple
    assert_drawn(paths["png"], (770, 462), colors=["#fde725", "#440154"], min_pixels=2000)

    # method x LR: the group choice is read back from the runs' saved Hydra choices
    sweep_dir = tmp_path / "sweep-lr"
    cmd = sweep_command("pws_tiny_app", ["scale=smoke", "epochs=2"], ("norm", ["none", "pws"]),
                        ("optim.lr", ["0.1"]), seeds=[0], sweep_dir=sweep_dir, launcher="local")
    subprocess.run(cmd, check=True, cwd=REPO, capture_output=True, timeout=600)
    res = collect_sweep(sweep_dir, "norm", "optim.lr", "top1_error", yorder=["none", "pws"])
    assert res.yvals == ["none", "pws"]
    assert res.cells[("none", 0.1)].text() == "NaN" and res.cells[("pws", 0.1)].values

    out = tmp_path / "collected"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "collect_results.py"), str(sweep_dir),
                           "--out", str(out), "--no-plots"],
                          check=True, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert "2 runs below" in proc.stdout
    runs_csv = list(csv.DictReader(io.StringIO((out / "runs.csv").read_text())))
    assert sorted(r["status"] for r in runs_csv) == ["diverged", "finished"]
    assert "top1_error" in runs_csv[0] and all(r["scale"] == "smoke" for r in runs_csv)


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_classify_sweep_through_launcher(launcher: str, tmp_path: Path, monkeypatch) -> None:
    """A gamma sweep of the real classification app as one Hydra multirun through the joblib launcher and
    through submitit's local executor (the SLURM path minus the cluster), rendered as a sweep table."""
    monkeypatch.setenv("WANDB_MODE", "offline" if launcher == "submitit_local" else "disabled")
    monkeypatch.setenv("PWS_JOBS", "2")
    sweep_dir = tmp_path / "sweep"
    cmd = sweep_command("pws.classify", TINY_CLASSIFY, ("norm.gamma", ["1e-4", "1e-3"]),
                        ("optim.lr", ["0.05"]), seeds=[0], sweep_dir=sweep_dir, launcher=launcher)
    proc = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for gamma in ("0.0001", "0.001"):
        run_dir = sweep_dir / f"gamma{gamma}" / "lr0.05" / "seed0"
        rec = json.loads((run_dir / "metrics.json").read_text())
        assert rec["status"] == "finished" and rec["scale"] == "smoke"
        assert rec["top1_error"] == rec["history"][-1]["top1_error"]
        wrong = rec["top1_error"] * 64 / 100  # of TINY_STEPS's 64 test images
        assert 0 <= round(wrong) <= 64 and wrong == pytest.approx(round(wrong))
        if launcher == "submitit_local":
            assert list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    if launcher == "submitit_local":
        assert len(list((sweep_dir / ".submitit").glob("*/*_result.pkl"))) == 2
    res, paths = render_sweep(sweep_dir, "norm.gamma", "optim.lr", "top1_error", out_dir=tmp_path / "out",
                              stem="sweep", title="classify", yorder=["1e-4", "1e-3"])
    assert [len(res.cells[(g, 0.05)].values) for g in (1e-4, 1e-3)] == [1, 1]
    assert_drawn(paths["png"], (770, 462))


def test_cells_side_by_side_share_the_cpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--cell-jobs N: each cell's runs get cpus // N threads (at least 1), unless the environment says;
    one cell at a time keeps the environment as it is."""
    table = load_table("table4")
    launches = plan(table, "smoke", [0], runs_root=tmp_path, cells=["plain/lr0.1/pws", "plain/lr0.1/bn"])
    seen: list[dict | None] = []
    monkeypatch.setattr(reproduce_module, "execute", lambda launch, **kw: seen.append(kw["env"]) or launch)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    reproduce_module.run_all(launches, table, scale="smoke", cell_jobs=2, printer=lambda line: None)
    cpus = len(os.sched_getaffinity(0))
    assert [env["OMP_NUM_THREADS"] for env in seen] == [str(max(1, cpus // 2))] * 2
    seen.clear()
    reproduce_module.run_all(launches, table, scale="smoke", cell_jobs=1, printer=lambda line: None)
    assert seen == [None, None]
    assert parallel_cells_env(2, {"PATH": "/bin"}, cpus=8) == {"PATH": "/bin", "OMP_NUM_THREADS": "4"}
    assert parallel_cells_env(3, {}, cpus=2)["OMP_NUM_THREADS"] == "1"
    assert parallel_cells_env(2, {"OMP_NUM_THREADS": "3"}, cpus=8)["OMP_NUM_THREADS"] == "3"


def test_default_cell_jobs_one_per_cpu_at_smoke_scale_only() -> None:
    """Without --cell-jobs: SLURM launches every cell, the smoke scale on this machine one per CPU (never
    more than there are cells), the full scale one at a time (a run holds the GPU)."""
    assert default_cell_jobs("slurm", "full", 18) == 18
    assert default_cell_jobs("local", "smoke", 18, cpus=2) == 2
    assert default_cell_jobs("local", "smoke", 3, cpus=16) == 3
    assert default_cell_jobs("local", "full", 18, cpus=16) == 1
    assert default_cell_jobs("joblib", "smoke", 18, cpus=16) == 1  # joblib runs a cell's seeds in parallel
