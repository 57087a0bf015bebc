"""The paper's claims as data: ``experiments/claims.yaml`` (the words, the cells they compare, the side).

A :class:`Claim` is what the paper says in words about one table; its :class:`Check` s are the
comparisons of cells that test it (a difference, a difference of differences, a ratio, or a cell that
diverges), each with the side the claim puts it on (``holds_if``). :meth:`Check.verdict` reads an
interval against that side: held (all of it on the claim's side), not held (all of it on the other),
undecided (it straddles the boundary). The paper's own value of a check comes from
``results/published.yaml`` (:meth:`Check.reference`), never from the claims file.

A claims file that cannot be used raises :class:`~pws.paper.files.BadFile` naming it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pws.paper.experiments import EXPERIMENTS_DIR
from pws.paper.files import BadFile, read_yaml
from pws.paper.published import reference_value

CLAIMS_FILE = "claims.yaml"
KINDS = ("difference", "difference_of_differences", "ratio", "diverges")
HELD, NOT_HELD, UNDECIDED, NOT_RUN = "held", "not held", "undecided", "not run"
_SIDE = re.compile(r"^\s*(>=|<=|>|<|within)\s*([-+]?[0-9.]+(?:e[-+]?[0-9]+)?)\s*$")


@dataclass(frozen=True)
class Check:
    """One comparison of cells of a table, and the side the claim puts it on."""

    label: str
    kind: str                 # one of KINDS
    cells: tuple[str, ...]    # a, b (difference, ratio); a, b, c, d (difference of differences); a (diverges)
    holds_if: str             # "> 0", "<= 0", "within 1.0"; empty for `diverges`

    @property
    def weights(self) -> dict[str, float] | None:
        """The comparison as a weighted sum of cell values (None for a ratio or a divergence)."""
        signs = {"difference": (1, -1), "difference_of_differences": (1, -1, -1, 1)}.get(self.kind)
        if signs is None:
            return None
        out: dict[str, float] = {}
        for cell, sign in zip(self.cells, signs, strict=True):
            out[cell] = out.get(cell, 0.0) + sign
        return out

    def value(self, x: Mapping[str, float]) -> float:
        """The comparison at the cell values ``x`` (``cell -> value``)."""
        if self.kind == "ratio":
            a, b = self.cells
            return x[a] / x[b] if x[b] != 0 else math.nan
        weights = self.weights
        if weights is None:
            raise ValueError(f"{self.label}: a divergence has no value")
        return sum(w * x[c] for c, w in weights.items())

    def verdict(self, low: float, high: float) -> str:
        """Held / not held / undecided for an interval [low, high] of the comparison (a point: low = high)."""
        op, bound = side(self.holds_if)
        if op == "within":
            if -bound <= low and high <= bound:
                return HELD
            return NOT_HELD if low > bound or high < -bound else UNDECIDED
        held = {">": low > bound, ">=": low >= bound, "<": high < bound, "<=": high <= bound}[op]
        other = {">": high <= bound, ">=": high < bound, "<": low >= bound, "<=": low > bound}[op]
        return HELD if held else NOT_HELD if other else UNDECIDED

    def reference(self, table: str, metric: str, reference: str = "paper") -> float | None:
        """The check's value on the ``reference`` numbers (NaN where a cell is NaN, the paper's
        collapse); None when one of its cells has no such number."""
        x = {}
        for cell in self.cells:
            value = reference_value(table, cell, metric, reference).value
            if value is None:
                return None
            x[cell] = value
        if self.kind == "diverges":
            return x[self.cells[0]]
        return self.value(x)


@dataclass(frozen=True)
class Claim:
    """What the paper says in words about one table, and the checks that test it."""

    id: str
    table: str
    metric: str
    where: str
    words: str
    checks: tuple[Check, ...]


def side(text: str) -> tuple[str, float]:
    """``"> 0"`` -> ``(">", 0.0)``, ``"within 1.0"`` -> ``("within", 1.0)``; ValueError otherwise."""
    m = _SIDE.match(text)
    if m is None:
        raise ValueError(f"holds_if {text!r} is none of '> x', '>= x', '< x', '<= x', 'within x'")
    return m.group(1), float(m.group(2))


def _check(raw: Any) -> Check:
    if not isinstance(raw, dict):
        raise ValueError(f"a check is a mapping, not {raw!r}")
    kinds = [k for k in KINDS if k in raw]
    if len(kinds) != 1:
        raise ValueError(f"check {raw.get('label')!r} needs exactly one of {', '.join(KINDS)}")
    kind = kinds[0]
    spec = raw[kind]
    if kind == "diverges":
        cells: tuple[str, ...] = (str(spec),)
    elif kind == "difference_of_differences":
        cells = tuple(str(c) for pair in spec for c in pair)
    else:
        cells = tuple(str(c) for c in spec)
    if len(cells) != {"diverges": 1, "difference_of_differences": 4}.get(kind, 2):
        raise ValueError(f"check {raw.get('label')!r}: {kind} of {spec!r}: wrong number of cells")
    holds_if = "" if kind == "diverges" else str(raw["holds_if"])
    if holds_if:
        side(holds_if)
    return Check(label=str(raw.get("label") or kind), kind=kind, cells=cells, holds_if=holds_if)


def load_claims(path: str | os.PathLike[str] | None = None) -> list[Claim]:
    """Every claim of ``experiments/claims.yaml`` (or ``path``), in the file's order."""
    path = Path(path or Path(EXPERIMENTS_DIR) / CLAIMS_FILE)
    raw = read_yaml(path)
    entries = raw.get("claims") if isinstance(raw, dict) else None
    if not isinstance(entries, list):
        raise BadFile(path, "not the paper's claims: no `claims` list")
    claims = []
    for entry in entries:
        try:
            claims.append(Claim(
                id=str(entry["id"]), table=str(entry["table"]), metric=str(entry["metric"]),
                where=str(entry.get("where", "")), words=" ".join(str(entry["words"]).split()),
                checks=tuple(_check(c) for c in entry["checks"]),
            ))
        except (KeyError, TypeError, ValueError) as e:
            name = entry.get("id") if isinstance(entry, dict) else entry
            raise BadFile(path, f"claim {name!r}: {type(e).__name__}: {e}") from e
    return claims
