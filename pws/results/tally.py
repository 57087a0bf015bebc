"""The runs of one cell (a table cell, or a point of a sweep grid) sorted by outcome, for one metric.

A run that **finished** contributes its value (a NaN value counts as diverged); a **diverged** run is NaN, as
the paper prints; the mean is over the finished runs, NaN when every completed run diverged, None when none
completed. Table cells (:mod:`pws.results.aggregate`) and sweep cells (:mod:`pws.results.sweep`) extend it
with how they print.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from pws.results.collect import Run


@dataclass(kw_only=True)
class RunTally:
    """The runs of one cell, for ``metric``: their values, and which seeds diverged, failed or are running."""

    metric: str = ""
    values: list[float] = field(default_factory=list)      # finished runs, their metric
    seeds: list[int | None] = field(default_factory=list)  # finished runs, same order
    diverged_seeds: list[int | None] = field(default_factory=list)
    failed: list[tuple[int | None, str]] = field(default_factory=list)      # (seed, error)
    unfinished: list[tuple[int | None, str]] = field(default_factory=list)  # (seed, why)
    missing_metric: list[int | None] = field(default_factory=list)  # finished without the metric
    run_dirs: list[str] = field(default_factory=list)

    def add(self, run: Run) -> None:
        """Count ``run`` under its outcome."""
        self.run_dirs.append(str(run.path))
        status = run.status
        if status == "finished":
            value = run.metric(self.metric)
            if value is None:
                self.missing_metric.append(run.seed)
            elif math.isnan(value):
                self.diverged_seeds.append(run.seed)
            else:
                self.values.append(value)
                self.seeds.append(run.seed)
        elif status == "diverged":
            self.diverged_seeds.append(run.seed)
        elif status == "failed":
            self.failed.append((run.seed, run.error or "failed"))
        else:
            why = "incomplete: no metrics.json" if run.record is None else f"{status}: not finished"
            self.unfinished.append((run.seed, why))

    @property
    def n_completed(self) -> int:
        return len(self.values) + len(self.diverged_seeds)

    @property
    def mean(self) -> float | None:
        if self.values:
            return statistics.fmean(self.values)
        if self.diverged_seeds:
            return math.nan
        return None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (n - 1) over the finished runs; None with fewer than two."""
        return statistics.stdev(self.values) if len(self.values) > 1 else None
