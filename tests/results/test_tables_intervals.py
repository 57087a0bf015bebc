"""95% intervals over seeds in the tables and on the vs-paper chart, from fabricated seeds of known spread.

The intervals are checked against scipy's own t-tests (``confidence_interval`` of ``ttest_1samp``,
``ttest_ind``), a second path to the same numbers; the chart is checked by reading back what it draws.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pytest
from matplotlib.container import BarContainer, ErrorbarContainer
from scipy import stats

from pws.results.intervals import mean_interval, welch_interval
from pws.results.plots import vs_paper_figure
from pws.results.report import build, render_table

from .tables_fakeruns import make_run

T_2 = 4.302652729911275  # Student's t, 97.5% quantile, 2 degrees of freedom (any printed t table)


def test_mean_interval_of_three_seeds() -> None:
    ci = mean_interval([1.0, 2.0, 3.0])  # mean 2, s = 1
    assert ci is not None and ci.n == 3 and "Student's t" in ci.method
    assert (ci.low, ci.high) == pytest.approx((2 - T_2 / math.sqrt(3), 2 + T_2 / math.sqrt(3)))
    assert ci.contains(4.4) and not ci.contains(4.6) and not ci.contains(-0.6)
    ref = stats.ttest_1samp([1.0, 2.0, 3.0], 0.0).confidence_interval(0.95)
    assert (ci.low, ci.high) == pytest.approx((ref.low, ref.high))


def test_one_seed_has_no_interval() -> None:
    assert mean_interval([5.0]) is None and mean_interval([]) is None
    assert welch_interval([(1.0, [1.0, 2.0]), (-1.0, [3.0])]) is None


def test_welch_interval_is_scipys() -> None:
    a, b = [1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 7.0]
    ci = welch_interval([(1.0, a), (-1.0, b)])
    ref = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert ci is not None and (ci.low, ci.high) == pytest.approx((ref.low, ref.high))


@pytest.fixture
def spread_runs(tmp_path: Path) -> Path:
    """Table 4 cells of known spread around the paper's numbers (residual LR 0.1: PWS 6.50, BN 6.12)."""
    root = tmp_path / "runs"
    for seed, v in enumerate([6.0, 6.1, 6.2]):   # mean 6.1, s = 0.1: [5.85, 6.35], the paper's 6.50 outside
        make_run(root, "table4", "residual/lr0.1/pws", seed, "finished", {"top1_error": v})
    for seed, v in enumerate([5.6, 6.1, 6.6]):   # mean 6.1, s = 0.5: [4.86, 7.34], the paper's 6.12 inside
        make_run(root, "table4", "residual/lr0.1/bn", seed, "finished", {"top1_error": v})
    make_run(root, "table4", "residual/lr0.1/gn", 0, "finished", {"top1_error": 7.0})  # one seed
    return root


def test_table_cells_have_their_interval(spread_runs: Path, tmp_path: Path) -> None:
    rep = render_table("table4", spread_runs, "smoke", tmp_path / "out", plots=False, wandb_mode="disabled")
    rows = {r["cell"]: r for r in csv.DictReader(io.StringIO(rep.paths["csv"].read_text()))}
    half_pws, half_bn = T_2 * 0.1 / math.sqrt(3), T_2 * 0.5 / math.sqrt(3)
    pws, bn, gn = rows["residual/lr0.1/pws"], rows["residual/lr0.1/bn"], rows["residual/lr0.1/gn"]
    assert float(pws["ci_low"]) == pytest.approx(6.1 - half_pws)
    assert float(pws["ci_high"]) == pytest.approx(6.1 + half_pws)
    assert (pws["reference_in_ci"], pws["delta"]) == ("no", "-0.40 (outside CI)")
    assert (bn["reference_in_ci"], bn["delta"]) == ("yes", "-0.02 (inside CI)")
    assert float(bn["ci_high"]) == pytest.approx(6.1 + half_bn)
    assert pws["ci_method"] == bn["ci_method"] == "Student's t, n = 3"
    assert pws["ci"] == f"[{6.1 - half_pws:.2f}, {6.1 + half_pws:.2f}] (n = 3)"
    # one seed: the interval is unknown, not zero
    unknown = "unknown (1 seed)"
    assert (gn["ci"], gn["ci_method"], gn["ci_low"], gn["ci_high"]) == (unknown, unknown, "", "")
    assert (gn["reference_in_ci"], gn["delta"]) == ("", "+0.18")
    assert pws["values"] == "0:6.0 1:6.1 2:6.2"
    md = rep.paths["md"].read_text()
    assert "| 6.10 ± 0.10 | [5.85, 6.35] (n = 3) | 6.50 | -0.40 (outside CI) |" in md
    assert "| 7.00 | unknown (1 seed) | 6.82 | +0.18 |" in md
    tex = rep.paths["tex"].read_text()
    assert "[5.85, 6.35] (n = 3) & 6.50 & -0.40 (outside CI)" in tex


def _bars(ax, gid: str) -> dict[float, float]:
    """x centre -> height of the bars of ``gid`` (``ours`` or ``reference``) on ``ax``."""
    return {round(p.get_x() + p.get_width() / 2, 6): p.get_height()
            for c in ax.containers if isinstance(c, BarContainer) for p in c.patches if p.get_gid() == gid}


def test_vs_paper_chart_draws_the_numbers_of_the_table(spread_runs: Path) -> None:
    """Each bar's height is the cell's mean (ours) or the paper's number, at its row; the error bar of ours
    spans the 95% interval; a one-seed cell has none. Reads the drawn artists, not the status words."""
    res = build("table4", spread_runs, "smoke").result
    fig = vs_paper_figure(res)
    k, i = next((k, i) for k, (i, d) in enumerate(res.displays) if d.column == "residual/lr0.1")
    ax = fig.axes[k]
    ours, reference = _bars(ax, "ours"), _bars(ax, "reference")
    assert len(reference) == len(res.rows)  # the paper has a number for every cell of Table 4
    drawn = 0
    errorbars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    spans = {round(seg[0][0], 6): (seg[0][1], seg[1][1])
             for c in errorbars for seg in c.lines[2][0].get_segments()}
    for j, row in enumerate(res.rows):
        cell = res.cell(row, i)
        ref_x = min(reference, key=lambda x, j=j: abs(x - j))
        assert reference[ref_x] == pytest.approx(cell.paper) and ref_x > j
        ours_x = [x for x in ours if abs(x - j) < 0.5]
        if cell.mean is None:
            assert not ours_x
            continue
        (x,) = ours_x
        assert x < j and ours[x] == pytest.approx(cell.mean)
        ci = cell.interval
        if ci is None:
            assert x not in spans
        else:
            assert spans[x] == pytest.approx((ci.low, ci.high))
        drawn += 1
    assert drawn == 3 and len(spans) == 2
    import matplotlib.pyplot as plt

    plt.close(fig)
