"""The paper's claims checked on our runs: ``results/<scale>/claims.md``, beside the rendered tables.

Every claim of ``experiments/claims.yaml`` (:mod:`pws.paper.claims`) is evaluated on the rendered tables
of a folder (their CSVs, which keep every seed's value): one section per table CSV (the whole table, or a
reduced grid, named), the claims of tables without a CSV listed as not run.

For a check (a comparison of cells):

* **paired by seed** when its cells share two or more seeds that finished: the comparison per shared seed,
  then its mean and Student's t 95% interval over those seeds (:func:`pws.results.intervals.mean_interval`);
* otherwise **unpaired**: the comparison of the cell means, with Welch's t interval for a difference
  (:func:`~pws.results.intervals.welch_interval`) when every cell has two seeds or more; unknown for a
  ratio, or with one seed;
* held / not held / undecided (:meth:`pws.paper.claims.Check.verdict`): the interval on the claim's side,
  on the other side, or straddling the boundary; an unknown interval is undecided, whatever the estimate;
* a ``diverges`` check is held when every completed seed of its cell diverged, not held when none did,
  undecided when some did;
* a check whose cells did not all run (or diverged at every seed) says so instead.

A claim is not held when one of its checks is not held, else undecided when one is undecided, else held;
its checks that were not run are counted beside the verdict. At the smoke scale the verdicts are checks of
the pipeline, not of the paper's findings: claims.md says so first.
"""

from __future__ import annotations

import csv
import math
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pws.paper.claims import HELD, NOT_HELD, NOT_RUN, UNDECIDED, Check, Claim, load_claims
from pws.paper.experiments import TABLES, load_table
from pws.paper.published import WHOSE
from pws.results.intervals import Interval, mean_interval, welch_interval

CLAIMS_MD = "claims.md"
_TABLE_CSV = re.compile(r"^(table\d+)(?:_(.+))?\.csv$")


@dataclass
class CellSeeds:
    """One cell of a table CSV, for one metric: every completed seed's value (NaN: diverged)."""

    values: dict[str, float]   # seed -> value; "?" for a run without a seed
    status: str
    reason: str

    @property
    def finite(self) -> dict[str, float]:
        return {s: v for s, v in self.values.items() if math.isfinite(v)}


@dataclass
class CheckResult:
    check: Check
    verdict: str
    estimate: float | None = None
    interval: Interval | None = None
    paper: float | None = None
    how: str = ""               # paired by seed (seeds 0, 1, 2) / unpaired / why there is no number


@dataclass
class ClaimResult:
    claim: Claim
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        run = [c.verdict for c in self.checks if c.verdict != NOT_RUN]
        if not run:
            return NOT_RUN
        for v in (NOT_HELD, UNDECIDED):
            if v in run:
                return v
        return HELD

    @property
    def coverage(self) -> str:
        """``2 of 6 checks not run``; empty when every check ran."""
        missing = sum(c.verdict == NOT_RUN for c in self.checks)
        return f"{missing} of {len(self.checks)} checks not run" if missing else ""


def parse_values(text: str) -> dict[str, float]:
    """``"0:6.1 1:NaN"`` (the CSV's ``values``) -> ``{"0": 6.1, "1": nan}``."""
    out = {}
    for item in text.split():
        seed, _, value = item.partition(":")
        out[seed] = float(value)
    return out


def read_table_csv(path: Path) -> dict[tuple[str, str], CellSeeds]:
    """``(cell, metric) -> CellSeeds`` of a rendered table's CSV."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {(r["cell"], r["metric"]): CellSeeds(parse_values(r.get("values") or ""), r["status"], r["reason"])
            for r in rows}


def evaluate_check(check: Check, table: str, metric: str, cells: dict[tuple[str, str], CellSeeds],
                   reference: str = "paper") -> CheckResult:
    """One check on the cells of one table CSV (see the module)."""
    paper = check.reference(table, metric, reference)
    got = {c: cells.get((c, metric)) for c in check.cells}
    missing = [c for c, s in got.items() if s is None or not s.values]
    if missing:
        why = "; ".join(f"{c}: {s.reason if s is not None else 'not in this table'}"
                        for c, s in got.items() if c in missing)
        return CheckResult(check, NOT_RUN, paper=paper, how=why)
    seeds = {c: s for c, s in got.items() if s is not None}
    if check.kind == "diverges":
        (cell,) = check.cells
        values = seeds[cell].values
        n_div = sum(math.isnan(v) for v in values.values())
        verdict = HELD if n_div == len(values) else NOT_HELD if n_div == 0 else UNDECIDED
        return CheckResult(check, verdict, estimate=n_div / len(values), paper=paper,
                           how=f"{n_div} of {len(values)} seeds diverged")
    collapsed = [c for c, s in seeds.items() if not s.finite]
    if collapsed:
        return CheckResult(check, UNDECIDED, paper=paper,
                           how="every seed diverged: " + ", ".join(collapsed))
    finite = {c: s.finite for c, s in seeds.items()}
    shared = sorted(set.intersection(*(set(v) for v in finite.values())) - {"?"}, key=_seed_order)
    if len(shared) >= 2:
        per_seed = [check.value({c: finite[c][s] for c in check.cells}) for s in shared]
        interval = mean_interval(per_seed)
        estimate = statistics.fmean(per_seed)
        how = f"paired by seed (seeds {', '.join(shared)})"
    else:
        means = {c: statistics.fmean(v.values()) for c, v in finite.items()}
        estimate = check.value(means)
        weights = check.weights
        interval = None
        if weights is not None:
            interval = welch_interval([(w, list(finite[c].values())) for c, w in weights.items()])
        n = "/".join(str(len(finite[c])) for c in check.cells)
        if interval is not None:
            how = f"unpaired (seeds per cell {n})"
        elif any(len(v) < 2 for v in finite.values()):
            how = f"interval unknown: one seed (seeds per cell {n})"
        else:
            how = "unpaired ratio: interval unknown (its cells share fewer than two seeds)"
    verdict = UNDECIDED if interval is None else check.verdict(interval.low, interval.high)
    return CheckResult(check, verdict, estimate=estimate, interval=interval, paper=paper, how=how)


def _seed_order(seed: str) -> tuple[int, str]:
    return (int(seed), "") if seed.isdigit() else (1 << 30, seed)


def evaluate(claims: Iterable[Claim], table: str, cells: dict[tuple[str, str], CellSeeds],
             reference: str = "paper") -> list[ClaimResult]:
    """The claims of ``table`` evaluated on its cells."""
    out = []
    for claim in claims:
        if claim.table != table:
            continue
        out.append(ClaimResult(claim, [evaluate_check(c, table, claim.metric, cells, reference)
                                       for c in claim.checks]))
    return out


# -- claims.md -------------------------------------------------------------------------------------------

def table_csvs(folder: Path, scale: str) -> list[tuple[str, str | None, Path]]:
    """``(table, grid or None, path)`` of every rendered table CSV at ``scale`` in ``folder`` that keeps
    its seeds' values (CSVs rendered before they did are left out)."""
    found = []
    for path in sorted(folder.glob("table*.csv")):
        m = _TABLE_CSV.match(path.name)
        if m is None or m.group(1) not in TABLES:
            continue
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            first = next(reader, None)
            if "values" not in (reader.fieldnames or []) or first is None or first.get("scale") != scale:
                continue
        found.append((m.group(1), m.group(2), path))
    return found


def _fmt(x: float | None, decimals: int, signed: bool = True) -> str:
    if x is None:
        return "-"
    if math.isnan(x):
        return "NaN"
    return f"{x:+.{decimals}f}" if signed else f"{x:.{decimals}f}"


def check_line(r: CheckResult, decimals: int) -> str:
    """One row of a claim's table of checks in claims.md."""
    ratio = r.check.kind == "ratio"
    d = 3 if ratio else decimals
    verdict = r.verdict if r.verdict != NOT_RUN else f"not run ({r.how})"
    how = "" if r.verdict == NOT_RUN else r.how
    if r.check.kind == "diverges":
        paper = "NaN (diverged)" if r.paper is not None and math.isnan(r.paper) else _fmt(r.paper, d)
        cells = [r.check.label, "diverges", how or "-", "-", "", paper, verdict]
    else:
        if r.interval is not None:
            ci = f"[{_fmt(r.interval.low, d, not ratio)}, {_fmt(r.interval.high, d, not ratio)}]"
        else:
            ci = "unknown" if r.estimate is not None else "-"
        cells = [r.check.label, f"`{r.check.holds_if}`", _fmt(r.estimate, d, not ratio), ci, how,
                 _fmt(r.paper, d, not ratio), verdict]
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def claims_markdown(folder: Path, scale: str, reference: str = "paper",
                    claims: list[Claim] | None = None) -> str:
    """claims.md of the rendered tables in ``folder`` (see the module)."""
    claims = load_claims() if claims is None else claims
    sources = table_csvs(folder, scale)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if scale == "smoke":
        lines = [
            "# The paper's claims, checked at the SMOKE scale: checks of the pipeline, not of the paper",
            "",
            "**Smoke scale, not the paper's setting.** The runs below are small stand-ins (see each table's "
            "heading); a claim held or not held here says the comparison can be computed end to end, "
            "not whether the paper's claim is true.",
        ]
    else:
        lines = [f"# The paper's claims, checked at the {scale} scale"]
    lines += [
        "",
        f"Rendered {now} from the table CSVs in `{folder}` · claims: `experiments/claims.yaml` · "
        f"reference: {WHOSE[reference]} numbers (`--reference`).",
        "",
        "Each check compares cells of one table. Ours: the comparison's estimate and its 95% interval, "
        "Student's t over seeds: **paired by seed** when the cells share two or more finished seeds (the "
        "comparison per seed, then its mean), else unpaired (Welch's t for a difference; unknown for a "
        "ratio, or with one seed). **held**: the whole interval on the claim's side of `holds if`; "
        "**not held**: the whole interval on the other side; **undecided**: the interval straddles the "
        "boundary, or is unknown (one seed). A `diverges` check is held when every seed diverged. A claim "
        "is not held when one check is not held, else undecided when one is, else held.",
    ]
    header = ["check", "holds if", "ours", "95% CI", "seeds", reference, "verdict"]
    done_tables = set()
    for table, grid, path in sources:
        done_tables.add(table)
        t = load_table(table)
        results = evaluate(claims, table, read_table_csv(path), reference)
        what = f"reduced grid `{grid}`" if grid else "the whole table"
        lines += ["", f"## {t.title} — `{path.name}` ({what})"]
        for cr in results:
            note = f" ({cr.coverage})" if cr.coverage and cr.verdict != NOT_RUN else ""
            lines += ["", f"### `{cr.claim.id}`: **{cr.verdict}**{note}", "",
                      f"> \"{cr.claim.words}\" — {cr.claim.where} ({cr.claim.metric})", "",
                      "| " + " | ".join(header) + " |", "| :-- | :-- | --: | --: | :-- | --: | :-- |"]
            lines += [check_line(r, t.decimals) for r in cr.checks]
    not_rendered = [c for c in claims if c.table not in done_tables]
    if not_rendered:
        lines += ["", "## Not run", "",
                  f"No rendered table in `{folder}` holds the cells of these claims:", ""]
        lines += [f"* `{c.id}` ({c.table}): \"{c.words}\"" for c in not_rendered]
    lines.append("")
    return "\n".join(lines)


def write_claims(folder: str | Path, scale: str, reference: str = "paper") -> Path:
    """Write ``<folder>/claims.md`` from the rendered table CSVs in ``folder``; return its path."""
    folder = Path(folder)
    path = folder / CLAIMS_MD
    path.write_text(claims_markdown(folder, scale, reference))
    return path
