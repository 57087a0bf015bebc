"""The paper's numbers (``results/published.yaml``) and the per-run comparison ``paper/*``, ``delta/*``.

Two references a reproduced number can be set against (:func:`reference_value`): ``paper``, the numbers
the paper prints (a table's ``cells``), each with the code that produced it (its ``produced_by``); and
``authors``, the numbers the authors published later in their READMEs (a table's ``authors`` block, with
its source), the paper's where they published none.

A ``published.yaml`` that cannot be read (YAML syntax error, binary bytes, not a mapping of tables, a
value that is not a number) raises :class:`~pws.paper.files.BadFile` naming the file.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path
from typing import Any

from pws.paper.experiments import REPO_ROOT
from pws.paper.files import BadFile, read_yaml

PUBLISHED_FILE = Path(os.environ.get("PWS_PUBLISHED", REPO_ROOT / "results" / "published.yaml"))


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> dict[str, Any]:
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise BadFile(path, f"not the paper's numbers: a YAML {type(raw).__name__}, not a mapping of tables")
    for table, entry in raw.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("cells", {}), dict):
            raise BadFile(path, f"{table}: not a mapping with a `cells` mapping")
    return raw


def published(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The whole file: ``{table: {"caption": ..., "cells": {cell: {metric: value}}}}``."""
    p = Path(path or PUBLISHED_FILE)
    return _load(str(p), p.stat().st_mtime)


def paper_value(table: str, cell: str, metric: str) -> float | None:
    """The paper's number for ``metric`` of ``cell`` in ``table`` (NaN where the paper prints NaN),
    or None when the paper has no such number."""
    try:
        value = published()[table]["cells"][cell][metric]
    except (KeyError, TypeError):
        return None
    return _number(value, table, cell, metric)


def _number(value: Any, table: str, cell: str, metric: str) -> float:
    if isinstance(value, bool):
        value = None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise BadFile(PUBLISHED_FILE, f"{table}: cell {cell!r}: {metric} is {value!r}, not a number "
                                      "(.nan where the paper prints NaN)") from None


REFERENCES = ("paper", "authors")
WHOSE = {"paper": "the paper's", "authors": "the authors'"}  # a reference's numbers, in words


@dataclass(frozen=True)
class Reference:
    """The number a reproduced cell is set against: ``value`` (None when there is none), whose it is
    (``paper`` or ``authors``) and where it comes from."""

    value: float | None
    whose: str
    source: str


def produced_by(table: str, cell: str) -> str:
    """Where the paper's numbers of ``cell`` were produced: the first ``produced_by`` pattern of its table
    (shell-style, over cell ids) that matches it; empty when the file does not say."""
    entry = published().get(table)
    for pattern, source in ((entry or {}).get("produced_by") or {}).items():
        if fnmatchcase(cell, str(pattern)):
            return str(source)
    return ""


def reference_value(table: str, cell: str, metric: str, reference: str = "paper") -> Reference:
    """The ``reference`` number of ``metric`` of ``cell``: the paper's (``paper``), or the authors' later
    one (``authors``) where their ``authors`` block has it, else the paper's."""
    if reference not in REFERENCES:
        raise ValueError(f"unknown reference {reference!r}; choose one of {', '.join(REFERENCES)}")
    if reference == "authors":
        authors = (published().get(table) or {}).get("authors") or {}
        value = ((authors.get("cells") or {}).get(cell) or {}).get(metric)
        if value is not None:
            return Reference(_number(value, table, cell, metric), "authors", str(authors.get("source", "")))
    return Reference(paper_value(table, cell, metric), "paper", produced_by(table, cell))


def paper_cell(table: str, cell: str) -> dict[str, float]:
    """All the paper's metrics for one cell (empty when the cell is not in the paper)."""
    try:
        entry = published()[table]["cells"][cell]
    except (KeyError, TypeError):
        return {}
    if not isinstance(entry, dict):
        raise BadFile(PUBLISHED_FILE, f"{table}: cell {cell!r} is {entry!r}, not a mapping of metrics")
    return {k: _number(v, table, cell, k) for k, v in entry.items()}


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def paper_summary(table: str | None, cell: str | None, metrics: dict[str, Any]) -> dict[str, float]:
    """``{"paper/<m>": paper, "delta/<m>": ours - paper}`` for every metric the paper has for the cell.

    ``metrics`` is the run's record (or any dict holding its final metrics under the runs' names). The
    delta is NaN when either side is NaN or the run has no value for the metric; a cell outside the paper
    (no table or cell, or not one of the published ones) gives ``{}``.
    """
    if not table or not cell:
        return {}
    out: dict[str, float] = {}
    for metric, paper in paper_cell(table, cell).items():
        ours = _as_float(metrics.get(metric))
        out[f"paper/{metric}"] = paper
        finite = ours is not None and math.isfinite(ours) and math.isfinite(paper)
        delta = ours - paper if finite else math.nan
        out[f"delta/{metric}"] = delta
    return out
