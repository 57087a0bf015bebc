"""Collect runs from any folder: every run directory (``metrics.json`` and/or Hydra's ``.hydra/``) below it.

A run is assigned to a table cell by the ``table`` and ``cell`` keys of its record (or of its Hydra config);
runs launched by hand without them are matched to a cell through their Hydra overrides and choices (see
:func:`match_cell`). Folders the reproduce driver launched also hold ``launch.json`` (the command and its
exit status): a cell whose launch failed before any run started is reported with that reason.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pws.paper.experiments import Table
from pws.runs.record import METRICS_FILE, read_metrics

LAUNCH_FILE = "launch.json"
SKIP_DIRS = {"wandb", ".submitit", "checkpoints", "ckpt", "__pycache__", ".git", "tb", "logs"}
IGNORED_KEYS = {"table", "cell", "seed", "force"}


@dataclass
class Run:
    """One run directory, as found on disk."""

    path: Path
    record: dict[str, Any] | None
    overrides: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    choices: dict[str, Any] = field(default_factory=dict)
    table: str | None = None
    cell: str | None = None
    seed: int | None = None
    scale: str | None = None

    @property
    def status(self) -> str:
        """finished / diverged / failed / running (started, no final record) / incomplete (no record)."""
        if self.record is None:
            return "incomplete"
        return str(self.record.get("status") or "running")

    @property
    def error(self) -> str | None:
        if self.record is None:
            return "no metrics.json (the run did not get far enough to write one)"
        err = self.record.get("error")
        return str(err).strip().splitlines()[-1][:200] if err else None

    def metric(self, name: str) -> float | None:
        """A final metric of the run (NaN for a diverged run without the key), None if absent."""
        if self.record is None:
            return None
        if name in self.record and self.record[name] is not None:
            try:
                return float(self.record[name])
            except (TypeError, ValueError):
                return None
        if self.status == "diverged":
            return math.nan
        return None

    @property
    def history(self) -> list[dict[str, Any]]:
        return list((self.record or {}).get("history") or [])

    def value(self, key: str) -> Any:
        """The run's value of a Hydra override key: a group choice (``norm``) or a config value
        (``optim.lr``), from the saved config; the override itself when neither is saved."""
        if key in self.choices:
            return self.choices[key]
        node: Any = self.config
        for part in key.split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            else:
                node = MISSING
                break
        if node is not MISSING and not isinstance(node, dict):
            return node
        for o in self.overrides:
            k, v = parse_override(o)
            if k == key:
                return v
        if isinstance(node, dict):  # a group whose choice was not saved: its config node
            return node.get("name", node.get("method", MISSING))
        return MISSING


MISSING = object()
"""What :meth:`Run.value` returns for a key the run neither overrode nor saved (compare with ``is``)."""


def parse_override(text: str) -> tuple[str, Any]:
    """``"+optim.lr=1e-2"`` -> ``("optim.lr", 0.01)``: key without +/++/~ prefix, value normalized."""
    key, _, value = text.partition("=")
    key = key.lstrip("+~")
    return key, normalize_value(value)


def normalize_value(value: Any) -> Any:
    """Compare override values by meaning: 1e-3 == 0.001 == 1.0e-3, True == true, 'x' == x."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    s = re.sub(r"\\(.)", r"\1", str(value).strip().strip("'\""))  # Hydra escapes ${oc.env:X,y} as $\{...\}
    low = s.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "~"):
        return None
    try:
        return float(s)
    except ValueError:
        return s


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def load_run(path: str | os.PathLike[str]) -> Run:
    path = Path(path)
    try:
        record = read_metrics(path)
    except OSError:  # unreadable (permissions, ...): collected as a run without a record
        record = None
    rec = record or {}
    # Hydra's .hydra/ when the app keeps it; else the app's own resolved config.yaml and the record's
    # overrides (pws.classify writes both into the run dir).
    overrides = _read_yaml(path / ".hydra" / "overrides.yaml") or rec.get("overrides") or []
    config = _read_yaml(path / ".hydra" / "config.yaml") or _read_yaml(path / "config.yaml") or {}
    if not isinstance(config, dict):
        config = {}
    hydra_cfg = _read_yaml(path / ".hydra" / "hydra.yaml") or {}
    choices = (((hydra_cfg.get("hydra") or {}).get("runtime") or {}).get("choices") or {})
    choices = {k: v for k, v in choices.items() if not k.startswith("hydra/")}
    run = Run(path=path, record=record, overrides=[str(o) for o in overrides], config=config,
              choices=choices)
    run.table = rec.get("table") or config.get("table")
    run.cell = rec.get("cell") or config.get("cell")
    seed = rec.get("seed", config.get("seed"))
    try:
        run.seed = int(seed) if seed is not None else None
    except (TypeError, ValueError):
        run.seed = None
    scale = rec.get("scale")
    if scale is None:
        sc = config.get("scale")
        scale = sc.get("name") if isinstance(sc, dict) else sc
    if scale is None:
        scale = choices.get("scale")
    run.scale = str(scale) if scale is not None else None
    return run


def is_run_dir(path: Path) -> bool:
    return (path / METRICS_FILE).is_file() or (path / ".hydra" / "config.yaml").is_file()


def iter_run_dirs(root: str | os.PathLike[str]) -> Iterator[Path]:
    """Every run directory below ``root`` (``root`` itself included), in sorted order."""
    root = Path(root)
    if not root.exists():
        return
    if is_run_dir(root):
        yield root
        return
    for dirpath, dirnames, _ in os.walk(root):
        here = Path(dirpath)
        keep = []
        for d in sorted(dirnames):
            if d in SKIP_DIRS or d.startswith(".") or d.startswith("offline-run-") or d.startswith("run-"):
                continue
            sub = here / d
            if is_run_dir(sub):
                yield sub
            else:
                keep.append(d)
        dirnames[:] = keep


def collect_runs(roots: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Run]:
    """Every run below one or several folders."""
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    runs = []
    for root in roots:
        runs += [load_run(p) for p in iter_run_dirs(root)]
    return runs


def collect_launches(roots: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[dict]:
    """The ``launch.json`` records of the reproduce driver below one or several folders."""
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    out = []
    for folder in roots:
        if not Path(folder).exists():
            continue
        for p in sorted(Path(folder).rglob(LAUNCH_FILE)):
            try:
                rec = json.loads(p.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            rec["path"] = str(p)
            out.append(rec)
    return out


# -- matching runs to cells ------------------------------------------------------------------------------

def override_dict(overrides: Iterable[str]) -> dict[str, Any]:
    """Hydra overrides as ``{key: normalized value}``, without the keys that do not define an experiment
    (``table``, ``cell``, ``seed``, ``force``, ``hydra.*``): two runs are the same experiment when these
    dicts are equal."""
    out = {}
    for o in overrides:
        k, v = parse_override(o)
        if k in IGNORED_KEYS or k.startswith("hydra"):
            continue
        out[k] = v
    return out


def match_cell(table: Table, run: Run, scale: str | None = None) -> str | None:
    """The cell of ``table`` that ``run`` is, from its overrides and saved config, or None.

    A cell matches when every override of the cell (at the run's scale) has the same value in the run,
    and the run sets explicitly no other key that some cell of the table sets (so a PWS run without
    trainable alpha is not taken for the full PWS cell of Table 2).
    """
    scale = scale or run.scale
    scales = [scale] if scale in table.scales else list(table.scales)
    run_explicit = override_dict(run.overrides)
    candidates = []
    for sc in scales:
        cells = table.cells(sc)
        relevant = set().union(*(override_dict(c.overrides).keys() for c in cells))
        for c in cells:
            want = override_dict(c.overrides)
            if any(k in relevant and k not in want for k in run_explicit):
                continue
            if all(normalize_value(run.value(k)) == v for k, v in want.items()):
                candidates.append((len(want), c.id))
    if not candidates:
        return None
    candidates.sort(reverse=True)
    if len(candidates) > 1 and candidates[0][0] == candidates[1][0] and candidates[0][1] != candidates[1][1]:
        return None  # ambiguous
    return candidates[0][1]


def runs_for_table(table: Table, runs: Iterable[Run], scale: str | None = None) -> dict[str, list[Run]]:
    """The runs of ``table`` (at ``scale`` if given) grouped by cell id; unmatched runs are left out."""
    out: dict[str, list[Run]] = {}
    for run in runs:
        if scale is not None and run.scale is not None and run.scale != scale:
            continue
        if run.table is not None and run.table != table.name:
            continue
        cell = run.cell if run.table == table.name and run.cell else None
        if cell is None:
            cell = match_cell(table, run, scale)
        if cell is None:
            continue
        out.setdefault(cell, []).append(run)
    for rs in out.values():
        rs.sort(key=lambda r: (r.seed if r.seed is not None else 1 << 30, str(r.path)))
    return out
