"""The history figures (pws/results/history_figures.py), Figures 3 and 5 on fabricated runs of their grids
(figure3_grid's SSD runs, Table 5's ResNet-50 runs): the CSV holds the mean of the figure's key per epoch,
and the saved figure's lines carry exactly those values."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from tables_fakeruns import make_run

from pws.results import history_figures
from pws.results.history_figures import FIGURES, HistoryFigure

TOP5 = {  # (method, seed) -> the figure's key per epoch
    ("bn", 0): [60.0, 40.0, 30.0],
    ("bn", 1): [62.0, 44.0, 28.0],
    ("pws", 0): [55.0, 35.0, 25.0],
}


def _run(root: Path, figure: HistoryFigure, method: str, seed: int, status: str, values: list[float]) -> Path:
    run_dir = make_run(root, figure.table, method, seed, status, {"top1_error": 20.0}, epochs=len(values),
                       overrides=[f"norm={method}"])
    record = json.loads((run_dir / "metrics.json").read_text())
    for entry, value in zip(record["history"], values, strict=True):
        entry[figure.key] = value
    (run_dir / "metrics.json").write_text(json.dumps(record))
    return run_dir


@pytest.fixture(params=sorted(FIGURES))
def figure(request: pytest.FixtureRequest) -> HistoryFigure:
    return FIGURES[request.param]


@pytest.fixture
def runs(figure: HistoryFigure, tmp_path: Path) -> Path:
    base = tmp_path / "runs" / "smoke" / figure.table
    for (method, seed), values in TOP5.items():
        _run(base, figure, method, seed, "finished", values)
    _run(base, figure, "pws", 1, "running", [99.0, 99.0])  # not finished: left out of the curve
    return tmp_path / "runs"


def test_the_csv_and_the_drawn_lines_are_the_runs_histories(figure: HistoryFigure, runs: Path, tmp_path: Path,
                                                            monkeypatch) -> None:  # fmt: skip
    drawn = []
    make_figure = history_figures.draw
    monkeypatch.setattr(history_figures, "draw", lambda *a: drawn.append(make_figure(*a)) or drawn[-1])
    lines: list[str] = []
    paths = history_figures.write_figure(figure, runs, "smoke", tmp_path / "results", printer=lines.append)
    assert paths["png"] == tmp_path / "results" / "smoke" / f"{figure.name}.png" and paths["png"].is_file()

    expected = {"bn": np.mean([TOP5["bn", 0], TOP5["bn", 1]], axis=0), "pws": np.array(TOP5["pws", 0])}
    with open(paths["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["method"] for r in rows} == set(expected)
    for method, values in expected.items():
        mine = [r for r in rows if r["method"] == method]
        assert [int(r["epoch"]) for r in mine] == [1, 2, 3]
        assert np.allclose([float(r[figure.key]) for r in mine], values)
        assert {r["seeds"] for r in mine} == {"2" if method == "bn" else "1"}
    assert any("left out" in ln and "pws/seed1" in ln for ln in lines)

    (fig,) = drawn
    by_label = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    assert set(by_label) == {"BN", "PWS"}
    for method, values in expected.items():
        line = by_label[method.upper()]
        assert np.array_equal(np.asarray(line.get_xdata(), float), [1.0, 2.0, 3.0])
        assert np.allclose(np.asarray(line.get_ydata(), float), values)


def test_no_runs_is_said_and_fails(tmp_path: Path, capsys) -> None:
    rc = history_figures.main(["figure5", "--scale", "smoke", "--runs", str(tmp_path / "none"),
                               "--out", str(tmp_path / "out")])  # fmt: skip
    assert rc == 1 and "make reproduce-table5 SCALE=smoke" in capsys.readouterr().out



@pytest.mark.parametrize("name", sorted(FIGURES))
def test_make_runs_the_grid_then_draws(name: str) -> None:
    """On a fresh checkout the figure's target makes its runs first (the driver skips finished ones)."""
    repo = Path(__file__).resolve().parents[2]
    make = ["make", "-n", "-s", "-C", str(repo), f"reproduce-{name}", "SCALE=smoke", "PY=python"]
    proc = subprocess.run(make, capture_output=True, text=True, check=True)
    commands = [line.split() for line in proc.stdout.splitlines() if line.strip()]
    assert [c[1:4] for c in commands] == [
        ["scripts/reproduce_table.py", "--scale", "smoke"],
        ["-m", "pws.results.history_figures", name],
    ], proc.stdout
    assert commands[0][-1] == FIGURES[name].table  # figure3_grid, table5
