"""The figure pipeline end to end on tiny settings: CSV columns as documented, PNGs written, reuse of the
Figure 1/6 measurement and of the Figure 2 runs, and the clear error when the real data are missing."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import replace

import numpy as np
import pytest
from figure_checks import assert_drawn, over_white

from pws.data import DataMissingError
from pws.diagnostics import figures
from pws.diagnostics.cli import STEPS_FILE, backbone_config, gamma_config, main, run_figure2, run_figure16
from pws.diagnostics.measurements import FIG2_RUNS


def header(path) -> list[str]:
    with open(path, newline="") as f:
        return next(csv.reader(f))


@pytest.fixture(scope="module")
def fig16_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fig16")
    cfg = backbone_config(
        "smoke", data_root=str(root / "data"), image_size=32, batch_size=2, max_images=4, synthetic_images=4
    )
    logs: list[str] = []
    out1 = run_figure16("figure1", cfg, root / "results", log=logs.append)
    out6 = run_figure16("figure6", cfg, root / "results", log=logs.append)
    return out1, out6, logs


def test_figure1_csv_and_png(fig16_dirs):
    out1, _, _ = fig16_dirs
    cols = header(out1["csv"])
    assert tuple(cols) == figures.FIG1_COLUMNS
    assert cols[:2] == ["method", "layer"]
    for documented in ("var_ratio_mean", "var_ratio_min", "var_ratio_max", "shift", "var_y", "var_y_pred"):
        assert documented in cols
    rows = figures.read_csv(out1["csv"])
    assert [(r["method"], r["layer"]) for r in rows] == [
        (m, i) for m in ("none", "bn", "pws") for i in range(1, 14)
    ]
    for r in rows:
        assert r["steps"] == 2 and r["images"] == 4
        assert r["var_ratio_min"] <= r["var_ratio_mean"] <= r["var_ratio_max"]
        assert math.isfinite(r["shift"]) and math.isfinite(r["var_y"])
    assert_drawn(out1["png"], (2040, 648), colors=list(figures.COLORS.values()))


def test_figure1_rows_aggregate_the_per_step_rows(fig16_dirs):
    """Each (method, layer) row of figure1.csv is the mean (min, max) over that layer's rows of
    figure1_steps.csv, and PWS's shift is zero (eq. 13) where the plain conv's is not."""
    out1, _, _ = fig16_dirs
    steps = figures.read_csv(out1["csv"].parent / STEPS_FILE)
    rows = {(r["method"], r["layer"]): r for r in figures.read_csv(out1["csv"])}
    assert len(steps) == 2 * len(rows)
    for (method, layer), row in rows.items():
        mine = [s for s in steps if (s["method"], s["layer"]) == (method, layer)]
        for column in ("var_ratio_mean", "shift", "shift_rel", "var_y", "var_y_pred", "x_mean", "x_sq"):
            expected = np.nanmean([s[column] for s in mine])  # a batch without the number (NaN) left out
            assert row[column] == pytest.approx(expected, rel=1e-12, nan_ok=True), column
        assert row["shift_min"] == min(s["shift"] for s in mine)
        assert row["shift_max"] == max(s["shift"] for s in mine)
        assert row["var_ratio_min"] == min(s["var_ratio_min"] for s in mine)
        assert row["var_ratio_max"] == max(s["var_ratio_max"] for s in mine)
    for layer in range(1, 14):
        plain, pws = rows[("none", layer)], rows[("pws", layer)]
        assert pws["shift_rel"] < 1e-10 < plain["shift_rel"], layer
        assert pws["shift"] < 1e-6 * plain["shift"], layer


def test_figure6_reuses_the_measurement(fig16_dirs):
    _, out6, logs = fig16_dirs
    assert any("reusing" in line for line in logs)
    assert tuple(header(out6["csv"])) == figures.FIG6_COLUMNS
    rows = figures.read_csv(out6["csv"])
    by_layer = {r["layer"]: r for r in rows if r["method"] == "none"}
    assert by_layer[1]["input_from"] == "image"
    assert [layer for layer, r in by_layer.items() if r["input_from"] == "maxpool"] == [3, 5, 8, 11]
    for r in rows:
        assert r["samples"] == 4
        assert r["x_mean_min"] <= r["x_mean_max"] and 0 <= r["x_ratio_min"] <= r["x_ratio_max"] <= 1
    # each method's ranges: bars at opacity 0.75
    assert_drawn(out6["png"], (1680, 648), colors=[over_white(c, 0.75) for c in figures.COLORS.values()])


def test_figure2_csv_and_png(tmp_path):
    """One classification run of the engine per gamma (1 epoch of 3 steps here), read back into the rows."""
    cfg = gamma_config("smoke", gammas=(1e-4, 1e-2), width=0.125, batch_size=16, epochs=1,
                       max_steps_per_epoch=3, overrides=("data.test_size=32",))  # fmt: skip
    logs: list[str] = []
    out = run_figure2(cfg, tmp_path, log=logs.append)
    assert tuple(header(out["csv"])) == figures.FIG2_COLUMNS
    rows = figures.read_csv(out["csv"])
    assert [(r["gamma"], r["step"]) for r in rows] == [(g, s) for g in (1e-4, 1e-2) for s in range(3)]
    for r in rows:
        assert r["layer"] == 3 and r["name"] == "features.4.conv"  # the third conv of plain_c
        assert r["inv_std_max"] == pytest.approx(1 / math.sqrt(r["wvar_min"] + r["gamma"]))
        assert r["lr"] == 0.05 and r["epoch"] == pytest.approx(r["step"] / 3)
        assert math.isfinite(r["loss"])
    assert_drawn(out["png"], (2040, 624))
    meta = json.loads((tmp_path / "smoke" / "figure2.json").read_text())
    assert meta["info"]["status"] == {"0.0001": "finished", "0.01": "finished"}
    assert meta["info"]["steps"] == 3 and meta["info"]["steps_per_epoch"] == 3
    runs = tmp_path / "smoke" / FIG2_RUNS
    records = {g: json.loads((runs / f"gamma{g}" / "metrics.json").read_text()) for g in ("0.0001", "0.01")}
    for g, record in records.items():
        assert record["status"] == "finished" and record["config"]["norm"]["gamma"] == float(g)
        assert record["config"]["optim"]["lr"] == 0.05 and record["config"]["probe"]["enabled"] is True

    # the same settings again: the finished runs are reused (their records untouched)
    before = {g: (runs / f"gamma{g}" / "metrics.json").read_bytes() for g in records}
    again = run_figure2(cfg, tmp_path, log=logs.append)
    assert figures.read_csv(again["csv"]) == rows
    assert {g: (runs / f"gamma{g}" / "metrics.json").read_bytes() for g in records} == before
    # other settings: trained again in the same run directory
    changed = run_figure2(replace(cfg, gammas=(1e-4,), lr=0.02), tmp_path, log=logs.append)
    assert {r["lr"] for r in figures.read_csv(changed["csv"])} == {0.02}
    assert json.loads((runs / "gamma0.0001" / "metrics.json").read_text())["config"]["optim"]["lr"] == 0.02


def test_figure2_status_of_a_diverged_run(tmp_path):
    cfg = gamma_config("smoke", gammas=(1e-2,), width=0.125, batch_size=16, epochs=1, max_steps_per_epoch=3,
                       lr=1e30, overrides=("data.test_size=32",))  # fmt: skip
    out = run_figure2(cfg, tmp_path, log=lambda line: None)
    rows = figures.read_csv(out["csv"])
    meta = json.loads((tmp_path / "smoke" / "figure2.json").read_text())
    assert meta["info"]["status"] == {"0.01": f"diverged at step {rows[-1]['step']}"}
    assert not math.isfinite(rows[-1]["loss"])


def test_figure2_smoke_scale_is_100_steps():
    """The hand-written loop's 100 steps, as epochs of the classification app: 4 x 25."""
    cfg = gamma_config("smoke")
    assert (cfg.epochs, cfg.max_steps_per_epoch, cfg.batch_size) == (4, 25, 32)
    overrides = cfg.run_overrides(1e-3)
    expected = ["model=plain_c", "norm=pws", "norm.gamma=0.001", "optim.lr=0.05", "probe.enabled=true",
                "probe.layers=[3]", "scale.classify.epochs=4", "train.max_steps_per_epoch=25"]  # fmt: skip
    assert set(expected) <= set(overrides)


def test_full_scale_without_voc_is_a_clear_error(tmp_path, capsys):
    missing = tmp_path / "no_voc_here"
    with pytest.raises(DataMissingError, match="VOC"):
        run_figure16("figure1", backbone_config("full", data_root=str(missing), device="cpu"), tmp_path)
    code = main(["figure1", "--scale", "full", "--data-root", str(missing), "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "How to get it" in err
    assert not (tmp_path / "full" / "figure1.csv").exists()


def test_figure2_without_cifar10_is_a_clear_error(tmp_path, capsys):
    missing = tmp_path / "no_cifar_here"
    code = main(["figure2", "--scale", "full", "--data-root", str(missing), "--device", "cpu", "--gammas",
                 "1e-3", "--out", str(tmp_path)])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "data missing" in err and str(missing) in err
    assert not (tmp_path / "full" / "figure2.csv").exists()


def test_unknown_scale_is_rejected():
    with pytest.raises(ValueError, match="unknown scale"):
        backbone_config("medium")
