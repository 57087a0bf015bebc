"""The runs of one cell (a table cell, or a point of a sweep grid) sorted by outcome, for one metric.

A run that **finished** contributes its value (a NaN value counts as diverged); a **diverged** run is NaN, as
the paper prints; the mean is over the finished runs, NaN when every completed run diverged, None when none
completed. A run without a result (running, stopped, incomplete, failed, or with an unreadable
``metrics.json``) never contributes a number, whatever its record holds: it is counted under its status,
and a cell without a number says why (:meth:`RunTally.why`). Table cells (:mod:`pws.results.aggregate`)
and sweep cells (:mod:`pws.results.sweep`) extend it with how they print.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from pws.results.collect import Run

UNFINISHED = ("running", "stopped", "incomplete")  # in this order of precedence in a cell's state


@dataclass(kw_only=True)
class RunTally:
    """The runs of one cell, for ``metric``: their values, and which seeds diverged, failed or are running."""

    metric: str = ""
    values: list[float] = field(default_factory=list)      # finished runs, their metric
    seeds: list[int | None] = field(default_factory=list)  # finished runs, same order
    diverged_seeds: list[int | None] = field(default_factory=list)
    failed: list[tuple[int | None, str]] = field(default_factory=list)      # (seed, error)
    unreadable: list[tuple[int | None, str]] = field(default_factory=list)  # (seed, "unreadable ...: path")
    unfinished: list[tuple[int | None, str, str]] = field(default_factory=list)  # (seed, status, note)
    missing_metric: list[int | None] = field(default_factory=list)  # finished without the metric
    run_dirs: list[str] = field(default_factory=list)

    def add(self, run: Run) -> None:
        """Count ``run`` under its outcome."""
        self.run_dirs.append(str(run.path))
        status = run.status
        if status == "finished":
            value = run.result(self.metric)
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
        elif status == "unreadable":
            self.unreadable.append((run.seed, run.note))
        else:
            self.unfinished.append((run.seed, status, run.note))

    @property
    def n_completed(self) -> int:
        return len(self.values) + len(self.diverged_seeds)

    @property
    def n_runs(self) -> int:
        return (self.n_completed + len(self.failed) + len(self.unreadable) + len(self.unfinished)
                + len(self.missing_metric))

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

    def _unfinished_statuses(self) -> list[str]:
        """The statuses of the unfinished runs, in order of precedence (a status of the record that is none
        of the known ones comes last)."""
        found = [s for _, s, _ in self.unfinished]
        return [s for s in UNFINISHED if s in found] + sorted({s for s in found if s not in UNFINISHED})

    @property
    def state(self) -> str:
        """ok / partial (finished and diverged seeds) / diverged / unreadable / failed / running / stopped /
        incomplete / not run: the first that applies."""
        if self.values and self.diverged_seeds:
            return "partial"
        if self.values:
            return "ok"
        if self.diverged_seeds:
            return "diverged"
        if self.unreadable:
            return "unreadable"
        if self.failed or self.missing_metric:
            return "failed"
        statuses = self._unfinished_statuses()
        return statuses[0] if statuses else "not run"

    def why(self) -> str | None:
        """Why a cell without a number has none (``unreadable metrics.json: <path>``, ``failed: <error>``,
        ``running``, ``stopped: killed?, rerun resumes it``...); None when nothing was run."""
        if self.unreadable:
            return self.unreadable[0][1]
        if self.failed:
            return "failed: " + (self.failed[0][1] or "no error message")
        if self.missing_metric:
            return f"failed: no {self.metric} in metrics.json"
        for status in self._unfinished_statuses():
            return next(note for _, s, note in self.unfinished if s == status)
        return None

    def notes(self) -> list[str]:
        """What else a cell with a number holds: ``1/3 diverged``, ``1/3 running``, ``1/3 unreadable
        metrics.json: <path>``... (the diverged count only beside finished seeds)."""
        total = self.n_runs
        notes = []
        if self.values and self.diverged_seeds:
            notes.append(f"{len(self.diverged_seeds)}/{total} diverged")
        if self.failed:
            notes.append(f"{len(self.failed)}/{total} failed")
        if self.unreadable:
            more = f" (+{len(self.unreadable) - 1} more)" if len(self.unreadable) > 1 else ""
            notes.append(f"{len(self.unreadable)}/{total} {self.unreadable[0][1]}{more}")
        for status in self._unfinished_statuses():
            notes.append(f"{sum(1 for _, s, _ in self.unfinished if s == status)}/{total} {status}")
        if self.missing_metric:
            notes.append(f"{len(self.missing_metric)}/{total} without {self.metric}")
        return notes
