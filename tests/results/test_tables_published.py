"""results/published.yaml against the paper's own text, and against the table definitions.

The paper's table lines are parsed here from ``../shared/paper.txt`` (tab-separated, as the text prints
them); the numbers are never written twice.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml

from pws.paper.experiments import all_tables, load_table
from pws.paper.published import paper_summary, paper_value

from .conftest import paper_path

REPO = Path(__file__).resolve().parents[2]
PUBLISHED = yaml.safe_load((REPO / "results" / "published.yaml").read_text())
PAPER = paper_path()
needs_paper = pytest.mark.skipif(PAPER is None, reason="the paper's text (../shared/paper.txt or $PWS_PAPER) "
                                 "is not beside this checkout")


def _num(text: str) -> float:
    return math.nan if text.strip() == "NaN" else float(text)


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _block(lines: list[str], header_start: str, caption_start: str) -> list[list[str]]:
    """The tab-split lines of one table: after the line starting with ``header_start``, up to its caption."""
    start = next(i for i, ln in enumerate(lines) if ln.startswith(header_start))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith(caption_start))
    return [ln.split("\t") for ln in lines[start:end] if ln.strip()]


@pytest.fixture(scope="module")
def paper_cells() -> dict[str, dict[str, dict[str, float]]]:
    """table -> cell -> metric -> the number as the paper's text prints it."""
    assert PAPER is not None
    lines = PAPER.read_text().splitlines()
    out: dict[str, dict[str, dict[str, float]]] = {}

    def put(table: str, cell: str, metric: str, value: float) -> None:
        out.setdefault(table, {}).setdefault(cell, {})[metric] = value

    # Table 1: "Methods  Training speed (FPS)  Batch Size" / "2 4 8" / one line per method.
    t1 = load_table("table1")
    by_label = {t1.rows[r]["info"][0].split()[0]: r for r in t1.rows}
    for f in _block(lines, "Methods\tTraining speed", "Table 1:")[2:]:
        row = by_label[f[0].split()[0]]
        fps, b2, b4, b8 = (_num(x) for x in f[1:5])
        put("table1", f"bs8/{row}", "train_fps", fps)
        for bs, v in (("bs2", b2), ("bs4", b4), ("bs8", b8)):
            put("table1", f"{bs}/{row}", "mAP", v)

    # Table 2: Methods, LR, Backbone, sqrt(2/n), trainable alpha, gamma, mAP; matched to the row whose
    # descriptive fields (experiments/table2.yaml) read the same.
    t2 = load_table("table2")
    for f in _block(lines, "Methods\tLR\tBackbone", "Table 2:")[2:]:
        fields = ["yes" if x.strip() == "✓" else x.strip() for x in f[:6]]
        matches = [r for r in t2.rows if [str(x) for x in t2.rows[r]["info"]] == fields]
        assert len(matches) == 1, f"no single row of experiments/table2.yaml reads {fields}"
        put("table2", matches[0], "mAP", _num(f[6]))

    # Table 3: Structure (blank: as above), Method, LR schedule, AP, AP50, AP75.
    structure = None
    for f in _block(lines, "Structure\tMethod", "Table 3:")[1:]:
        if f[0].strip():
            structure = "mask_rcnn" if f[0].startswith("Mask R-CNN") else f[0].strip().lower()
        cell = f"{structure}/{f[2].strip()}/{f[1].strip().lower()}"
        for metric, v in zip(("bbox_mAP", "bbox_mAP_50", "bbox_mAP_75"), f[3:6], strict=True):
            put("table3", cell, metric, _num(v))

    # Table 4: Methods, then Residual LR 1e-1, 5e-2, Plain LR 1e-1, 5e-2.
    t4 = load_table("table4")
    by_label = {t4.rows[r]["info"][0]: r for r in t4.rows}
    header = _block(lines, "Methods\tResidual", "Table 4:")
    lrs = [x for x in header[1] if x.strip()]
    assert lrs == ["LR: 1e-1", "LR: 5e-2", "LR: 1e-1", "LR: 5e-2"]
    for f in header[2:]:
        row = by_label[f[0]]
        for col, v in zip(("residual/lr0.1", "residual/lr0.05", "plain/lr0.1", "plain/lr0.05"), f[1:5],
                          strict=True):
            put("table4", f"{col}/{row}", "top1_error", _num(v))

    # Table 5: methods as columns.
    t5 = _block(lines, "Measurement\t", "Table 5:")
    for method, v in zip(t5[0][1:], t5[1][1:], strict=True):
        put("table5", method.lower(), "top1_error", _num(v))
    return out


@needs_paper
def test_every_published_number_is_the_papers(paper_cells) -> None:
    n = 0
    for table, cells in paper_cells.items():
        assert set(cells) == set(PUBLISHED[table]["cells"]), table
        for cell, metrics in cells.items():
            assert set(metrics) == set(PUBLISHED[table]["cells"][cell]), (table, cell)
            for metric, value in metrics.items():
                assert _same(float(PUBLISHED[table]["cells"][cell][metric]), value), (table, cell, metric)
                n += 1
    # 18 mAP + 6 FPS, 13, 7 x 3, 24, 6
    assert n == 24 + 13 + 21 + 24 + 6


@needs_paper
def test_a_handful_of_cells_through_the_lookup(paper_cells) -> None:
    for table, cell, metric in [
        ("table1", "bs2/bn", "mAP"), ("table1", "bs8/pws", "train_fps"),
        ("table2", "lr1e-2/vgg16/pws_noalpha/gamma1e-3", "mAP"), ("table3", "ssd/2x/pws", "bbox_mAP_50"),
        ("table4", "plain/lr0.05/pws", "top1_error"), ("table5", "gn", "top1_error"),
    ]:
        assert _same(paper_value(table, cell, metric), paper_cells[table][cell][metric])


@needs_paper
def test_nan_cells_of_the_paper(paper_cells) -> None:
    nans = sorted((t, c) for t, cells in paper_cells.items() for c, m in cells.items()
                  if any(math.isnan(v) for v in m.values()))
    assert nans == [("table1", "bs2/wn"), ("table2", "lr1e-2/vgg16/pws/gamma1e-5"),
                    ("table2", "lr1e-2/vgg16/pws_nofanin_noalpha/gamma1e-3")]
    text = PAPER.read_text()
    # the text says which rows those are
    assert "the row of the first NaN result" in text
    assert re.search(r"When γ is 1e-5, normal LR can make PWS train well.*excessive LR will lead to NaN",
                     text)


def test_published_cells_are_cells_of_the_tables() -> None:
    """Every published number has a cell (and the cell's printed column reads that metric), and every
    printed cell of every table has a published number."""
    for table in all_tables():
        published = PUBLISHED[table.name]["cells"]
        printed = {(table.cell_id(d.column, r), d.metric) for r in table.rows for d in table.display}
        numbers = {(c, m) for c, ms in published.items() for m in ms}
        assert printed == numbers, table.name


def test_paper_summary_for_a_run() -> None:
    s = paper_summary("table4", "plain/lr0.1/pws", {"top1_error": 6.0, "status": "finished"})
    assert s == {"paper/top1_error": 6.16, "delta/top1_error": pytest.approx(-0.16)}
    s = paper_summary("table1", "bs2/wn", {"mAP": 70.0})
    assert math.isnan(s["paper/mAP"]) and math.isnan(s["delta/mAP"])
    assert paper_summary("table4", "no/such/cell", {"top1_error": 1.0}) == {}
    assert paper_summary(None, None, {"top1_error": 1.0}) == {}
