"""The paper's claims as checks (experiments/claims.yaml, pws/results/claims.py), on fabricated seeds whose
spread is known: each verdict (held, not held, undecided, not run) must come out where the numbers put it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from pws.paper.claims import HELD, NOT_HELD, NOT_RUN, UNDECIDED, load_claims
from pws.paper.experiments import load_table
from pws.results.claims import CLAIMS_MD, ClaimResult, evaluate, read_table_csv
from pws.results.report import render_table

from .tables_fakeruns import make_run

CLAIMS = load_claims()
SMALL_LR = "output-norms-not-better-at-small-lr"  # Table 4: BN, GN, SN not better than PWS at LR 5e-2


def test_every_claim_holds_on_the_papers_own_numbers() -> None:
    """The claims file reads the paper right: each check, at the paper's numbers, is on the claim's side
    (a `diverges` check: the paper prints NaN); its cells and metric are printed cells of its table."""
    assert len(CLAIMS) >= 12 and len({c.id for c in CLAIMS}) == len(CLAIMS)
    assert {c.table for c in CLAIMS} == {"table1", "table2", "table3", "table4", "table5"}
    for claim in CLAIMS:
        table = load_table(claim.table)
        for check in claim.checks:
            for cell in check.cells:
                column, _ = table.split_cell(cell)
                assert any(d.column == column and d.metric == claim.metric for d in table.display), cell
            paper = check.reference(claim.table, claim.metric)
            assert paper is not None, (claim.id, check.label)
            if check.kind == "diverges":
                assert math.isnan(paper), (claim.id, check.label)
            else:
                assert check.verdict(paper, paper) == HELD, (claim.id, check.label, paper)


def test_the_speed_check_is_the_papers_ratio() -> None:
    speed = next(c for c in CLAIMS if c.table == "table1" and c.metric == "train_fps")
    assert speed.checks[0].reference("table1", "train_fps") == pytest.approx(52.72 / 45.66)  # 1.155


def _claim(tmp_path: Path, table: str, claim_id: str, runs: dict[str, list[tuple[int, float]]],
           metric: str) -> ClaimResult:
    """Render ``table`` from fabricated runs (``cell -> [(seed, value)]``; NaN: diverged) and evaluate one
    claim on its CSV."""
    root = tmp_path / "runs"
    for cell, seeds in runs.items():
        for seed, value in seeds:
            status = "diverged" if math.isnan(value) else "finished"
            make_run(root, table, cell, seed, status, {"mAP": 50.0, "train_fps": 1.0, metric: value})
    rep = render_table(table, root, "smoke", tmp_path / "out", plots=False, wandb_mode="disabled")
    results = evaluate(CLAIMS, table, read_table_csv(rep.paths["csv"]))
    (result,) = [r for r in results if r.claim.id == claim_id]
    return result


@pytest.mark.parametrize(("bn", "verdict"), [
    ([7.0, 7.3, 7.1], HELD),       # BN - PWS per seed 1.0, 1.2, 0.9: the interval [0.65, 1.41] is above 0
    ([5.0, 5.2, 5.1], NOT_HELD),   # -1.0, -0.9, -1.1: [-1.25, -0.75], all below 0
    ([6.0, 6.9, 6.3], UNDECIDED),  # 0.0, +0.8, +0.1: [-0.78, +1.38] straddles 0
])
def test_small_lr_claim_comes_out_as_its_seeds_say(bn: list[float], verdict: str, tmp_path: Path) -> None:
    pws = [6.0, 6.1, 6.2]
    result = _claim(tmp_path, "table4", SMALL_LR, {
        "plain/lr0.05/bn": list(enumerate(bn)), "plain/lr0.05/pws": list(enumerate(pws))}, "top1_error")
    checks = {c.check.label: c for c in result.checks}
    plain_bn = checks["plain, LR 5e-2: BN - PWS"]
    assert plain_bn.verdict == verdict and plain_bn.how == "paired by seed (seeds 0, 1, 2)"
    assert plain_bn.estimate == pytest.approx(sum(bn) / 3 - sum(pws) / 3)
    assert plain_bn.paper == pytest.approx(7.67 - 6.30)
    # the other five checks have no runs: listed as not run, and the claim's verdict is that of the one run
    assert [c.verdict for c in result.checks].count(NOT_RUN) == 5
    assert result.verdict == verdict and result.coverage == "5 of 6 checks not run"


def test_pairing_by_seed_decides_what_unpaired_seeds_cannot(tmp_path: Path) -> None:
    """The same values, a large seed-to-seed spread shared by both cells: paired by seed the difference is
    about 1.0 on every seed (held); with no seed in common the cells are unpaired (Welch): undecided."""
    bn, pws = [7.0, 9.1, 10.9], [6.0, 8.0, 10.0]
    paired = _claim(tmp_path / "a", "table4", SMALL_LR, {
        "plain/lr0.05/bn": list(enumerate(bn)), "plain/lr0.05/pws": list(enumerate(pws))}, "top1_error")
    unpaired = _claim(tmp_path / "b", "table4", SMALL_LR, {
        "plain/lr0.05/bn": [(s + 3, v) for s, v in enumerate(bn)], "plain/lr0.05/pws": list(enumerate(pws))},
        "top1_error")
    p, u = (next(c for c in r.checks if c.verdict != NOT_RUN) for r in (paired, unpaired))
    assert p.verdict == HELD and p.interval is not None and p.interval.low > 0.5
    assert u.verdict == UNDECIDED and u.how == "unpaired (seeds per cell 3/3)"
    assert u.estimate == pytest.approx(p.estimate) and u.interval.low < 0 < u.interval.high


def test_one_seed_is_undecided_whatever_the_gap(tmp_path: Path) -> None:
    result = _claim(tmp_path, "table4", SMALL_LR, {
        "plain/lr0.05/bn": [(0, 50.0)], "plain/lr0.05/pws": [(0, 6.0)]}, "top1_error")
    check = next(c for c in result.checks if c.verdict != NOT_RUN)
    assert (check.verdict, check.estimate, check.interval) == (UNDECIDED, 44.0, None)
    assert check.how == "interval unknown: one seed (seeds per cell 1/1)"


@pytest.mark.parametrize(("wn", "verdict"), [
    ([math.nan, math.nan], HELD), ([math.nan, 60.0], UNDECIDED), ([60.0, 61.0], NOT_HELD)])
def test_a_collapse_claim(wn: list[float], verdict: str, tmp_path: Path) -> None:
    result = _claim(tmp_path, "table1", "wn-collapses-at-small-batch", {"bs2/wn": list(enumerate(wn))}, "mAP")
    (check,) = result.checks
    assert check.verdict == verdict == result.verdict
    assert check.how == f"{sum(math.isnan(v) for v in wn)} of 2 seeds diverged"


def test_ratio_claim_paired_by_seed(tmp_path: Path) -> None:
    result = _claim(tmp_path, "table1", "pws-faster-than-other-normalizations", {
        "bs8/pws": [(0, 50.0), (1, 52.0), (2, 51.0)], "bs8/bn": [(0, 45.0), (1, 46.0), (2, 44.0)]},
        "train_fps")
    bn = result.checks[0]
    assert bn.check.label == "training FPS, PWS / BN" and bn.verdict == HELD
    assert bn.estimate == pytest.approx((50 / 45 + 52 / 46 + 51 / 44) / 3)
    assert result.verdict == HELD and result.coverage == "4 of 5 checks not run"


def test_claims_md_beside_the_table(tmp_path: Path) -> None:
    """claims.md: labelled a check of the pipeline at the smoke scale; the claims of the rendered table
    with their verdicts; the claims of the tables not rendered listed as not run."""
    _claim(tmp_path, "table4", SMALL_LR, {"plain/lr0.05/bn": [(0, 7.0), (1, 7.3), (2, 7.1)],
                                          "plain/lr0.05/pws": [(0, 6.0), (1, 6.1), (2, 6.2)]}, "top1_error")
    md = (tmp_path / "out" / CLAIMS_MD).read_text()
    assert md.splitlines()[0].startswith("# The paper's claims, checked at the SMOKE scale: checks of the "
                                         "pipeline")
    assert f"### `{SMALL_LR}`: **held** (5 of 6 checks not run)" in md
    assert "| plain, LR 5e-2: BN - PWS | `>= 0` | +1.03 | [+0.65, +1.41] | paired by seed (seeds 0, 1, 2) " \
           "| +1.37 | held |" in md
    assert "| residual, LR 5e-2: BN - PWS | `>= 0` | - | - |  | +2.39 | not run (residual/lr0.05/bn: " \
           "not run; residual/lr0.05/pws: not run) |" in md
    not_run = md[md.index("## Not run"):]
    assert "`bn-not-robust-to-batch-size` (table1)" in not_run and SMALL_LR not in not_run
