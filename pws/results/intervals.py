"""95% intervals over seeds: Student's t, for a cell's mean and for a comparison between cells.

A handful of seeds is what a reproduction has (three in the paper's setting, often one at the smoke scale),
so the interval is Student's t with n - 1 degrees of freedom, not a percentile bootstrap: with three seeds
a bootstrap's interval is a third as wide as the t interval (its 2.5/97.5 percentiles of the resampled
mean sit about 1.6 standard errors out, where t's 97.5% quantile with 2 degrees of freedom is 4.30), so it
would call a gap between methods real far more often than the seeds allow. With one seed the interval is
unknown (None), never zero.

* :func:`mean_interval`: mean ± t(0.975, n-1) · s / sqrt(n) over the values of one cell;
* :func:`welch_interval`: a weighted sum of the means of cells with different seeds (unpaired), its
  degrees of freedom by Welch and Satterthwaite.

A comparison of cells that share seeds is paired: its value per seed goes through :func:`mean_interval`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A two-sided interval at ``LEVEL`` around an estimate, from ``n`` seeds; ``method`` in words."""

    low: float
    high: float
    n: int
    method: str

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def t_quantile(df: float) -> float:
    """The two-sided ``LEVEL`` quantile of Student's t with ``df`` degrees of freedom."""
    return float(stats.t.ppf(0.5 + LEVEL / 2, df))


def mean_interval(values: Sequence[float]) -> Interval | None:
    """Student's t interval of the mean of ``values`` (one per seed); None with fewer than two."""
    n = len(values)
    if n < 2:
        return None
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    half = t_quantile(n - 1) * sd / math.sqrt(n)
    return Interval(mean - half, mean + half, n, f"Student's t, n = {n}")


def welch_interval(terms: Sequence[tuple[float, Sequence[float]]]) -> Interval | None:
    """The interval of ``sum(w * mean(values))`` over ``terms`` = ``[(w, values), ...]`` of independent
    cells (their seeds unpaired): variance ``sum(w² s² / n)``, degrees of freedom by Welch-Satterthwaite.
    None when a cell has fewer than two values."""
    if any(len(v) < 2 for _, v in terms):
        return None
    parts = [(w * w * statistics.variance(v) / len(v), len(v) - 1) for w, v in terms]
    var = sum(p for p, _ in parts)
    estimate = sum(w * statistics.fmean(v) for w, v in terms)
    n = min(len(v) for _, v in terms)
    method = f"Welch's t, unpaired, n = {'/'.join(str(len(v)) for _, v in terms)}"
    if var == 0.0:
        return Interval(estimate, estimate, n, method)
    df = var * var / sum(p * p / d for p, d in parts)
    half = t_quantile(df) * math.sqrt(var)
    return Interval(estimate - half, estimate + half, n, method)
