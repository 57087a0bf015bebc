"""The figure pipeline end to end on tiny settings: CSV columns as documented, PNGs written, reuse of the
Figure 1/6 measurement, and the clear error when the real data are missing."""

from __future__ import annotations

import csv
import math

import pytest

from pws.data import DataMissingError
from pws.diagnostics import figures
from pws.diagnostics.cli import backbone_config, gamma_config, main, run_figure2, run_figure16


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
    assert out1["png"].stat().st_size > 10_000


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
    assert out6["png"].stat().st_size > 10_000


def test_figure2_csv_and_png(tmp_path):
    cfg = gamma_config("smoke", gammas=(1e-4, 1e-2), width=0.125, batch_size=16, steps=3)
    logs: list[str] = []
    out = run_figure2(cfg, tmp_path, log=logs.append)
    assert tuple(header(out["csv"])) == figures.FIG2_COLUMNS
    rows = figures.read_csv(out["csv"])
    assert [(r["gamma"], r["step"]) for r in rows] == [(g, s) for g in (1e-4, 1e-2) for s in range(3)]
    for r in rows:
        assert r["layer"] == 3 and r["name"] == "features.4.conv"  # the third conv of plain_c
        assert r["inv_std_max"] == pytest.approx(1 / math.sqrt(r["wvar_min"] + r["gamma"]))
    assert out["png"].stat().st_size > 10_000


def test_full_scale_without_voc_is_a_clear_error(tmp_path, capsys):
    missing = tmp_path / "no_voc_here"
    with pytest.raises(DataMissingError, match="VOC"):
        run_figure16("figure1", backbone_config("full", data_root=str(missing), device="cpu"), tmp_path)
    code = main(["figure1", "--scale", "full", "--data-root", str(missing), "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "How to get it" in err
    assert not (tmp_path / "full" / "figure1.csv").exists()


def test_unknown_scale_is_rejected():
    with pytest.raises(ValueError, match="unknown scale"):
        backbone_config("medium")
