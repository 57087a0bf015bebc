"""Collect runs from any folder: every run directory (``metrics.json`` and/or Hydra's ``.hydra/``) below it.

A run is assigned to a table cell by the ``table`` and ``cell`` keys of its record (or of its Hydra config);
runs launched by hand without them are matched to a cell through their Hydra overrides and choices (see
:func:`match_cell`). Folders the reproduce driver launched also hold ``launch.json`` (the command and its
exit status): a cell whose launch failed before any run started is reported with that reason.

What a run is (:attr:`Run.status`) comes from its record and, for a run without a final one, from its
lock (``<run_dir>/.lock``, the pid and host of the process that holds the run directory):

* ``finished``, ``diverged``, ``failed``: as the record says;
* ``running``: the record says running and the lock's process is alive (or on another host, where it
  cannot be checked from here);
* ``stopped``: the record says running but no live process holds the lock (killed, or preempted: the
  record has ``interrupted``); rerunning the cell resumes it from its last checkpoint;
* ``incomplete``: no ``metrics.json`` (the run did not get far enough), ``running`` if its lock is live;
* ``unreadable``: a ``metrics.json`` that is there but cannot be read (garbage, binary bytes, not a JSON
  object): :attr:`Run.error` names the file; collection goes on with every other run.

Only a finished or diverged run has a result: :meth:`Run.result` is None for every other status (the
record of a running or failed run holds the metrics of its last evaluation, which are not its result).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pws.engine.lock import LOCK_FILE, lock_state
from pws.paper.experiments import Table
from pws.records.metrics_file import DONE_STATUSES, METRICS_FILE, UnreadableRecord, read_metrics
from pws.records.wandb_run import RUN_ID_FILE

log = logging.getLogger(__name__)

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
    unreadable: UnreadableRecord | None = None   # its metrics.json is there but cannot be read
    process: str = "none"                         # its lock: see :func:`pws.engine.lock.lock_state`
    holder: dict[str, Any] | None = None          # the lock's content (pid, host)

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def record_status(self) -> str | None:
        """The status the record says (None without a readable record)."""
        if self.record is None:
            return None
        return str(self.record.get("status") or "running")

    @property
    def live(self) -> bool:
        """Whether a process holds the run directory (its lock's pid is alive, or is on another host)."""
        return self.process in ("alive", "elsewhere")

    @property
    def status(self) -> str:
        """finished / diverged / failed / running / stopped / incomplete / unreadable (see the module)."""
        if self.unreadable is not None:
            return "unreadable"
        status = self.record_status
        if status is None:
            return "running" if self.live else "incomplete"
        if status == "running" and not self.live:
            return "stopped"
        return status

    @property
    def error(self) -> str | None:
        """What went wrong, in full (runs.csv's ``error``): the error of a failed run, the file of an
        unreadable record, why a stopped run stopped; None for a finished, diverged or running run."""
        status = self.status
        if status == "unreadable":
            return str(self.unreadable)
        if status == "incomplete":
            return "no metrics.json (the run did not get far enough to write one)"
        if status == "stopped":
            return self._stopped_why()
        if self.record is None:
            return None
        err = self.record.get("error")
        return str(err).strip().splitlines()[-1][:200] if err and str(err).strip() else None

    @property
    def note(self) -> str:
        """One short line for a run without a result, as a table cell shows it: ``running``,
        ``stopped: killed? rerun resumes it``, ``unreadable metrics.json: <path>``, ``failed: <error>``..."""
        status = self.status
        if status == "unreadable":
            return f"unreadable metrics.json: {self.metrics_file}"
        if status == "incomplete":
            return "incomplete: no metrics.json"
        if status == "running":
            if self.process == "elsewhere" and self.holder:
                return f"running on {self.holder.get('host')}"
            return "running"
        if status == "stopped":
            how = "preempted" if self.interrupted else "killed?"
            return f"stopped: {how}, rerun resumes it"
        if status == "failed":
            return "failed: " + (self.error or "no error message")
        return status

    @property
    def interrupted(self) -> str | None:
        """The preemption message of a run stopped by a preemption signal (the record's ``interrupted``)."""
        value = (self.record or {}).get("interrupted")
        return str(value) if value else None

    def _stopped_why(self) -> str:
        if self.interrupted:
            how = f"preempted ({self.interrupted})"
        elif self.holder is None:
            how = f"killed? its record says running but there is no lock file {self.path / LOCK_FILE}"
        else:
            how = (f"killed? its record says running but the process of its lock {self.path / LOCK_FILE} "
                   f"(pid {self.holder.get('pid')} on {self.holder.get('host')}) is gone")
        return how + "; rerunning the cell resumes it from its last checkpoint"

    def metric(self, name: str) -> float | None:
        """A metric of the record (NaN for a diverged run without the key), None if absent; whatever the
        status (a running run's last evaluation too): see :meth:`result` for the run's result."""
        if self.record is None:
            return None
        if name in self.record and self.record[name] is not None:
            value = self.record[name]
            if isinstance(value, bool):
                return None
            try:
                return float(value)
            except (TypeError, ValueError):
                return None
        if self.status == "diverged":
            return math.nan
        return None

    def result(self, name: str) -> float | None:
        """The run's result for metric ``name``: its value when the run finished, NaN when it diverged,
        None for every other status and when the record has no such number."""
        if self.status not in DONE_STATUSES:
            return None
        if self.status == "diverged":
            return math.nan
        return self.metric(name)

    @property
    def commit(self) -> str | None:
        """The commit the run was made from (10 hex digits), ``-dirty`` when tracked files had uncommitted
        changes then; None when its record does not say."""
        record = self.record or {}
        if not record.get("git_commit"):
            return None
        return str(record["git_commit"])[:10] + ("-dirty" if record.get("git_dirty") else "")

    @property
    def wandb_id(self) -> str | None:
        """The id of the run's wandb run (``<run dir>/wandb_run_id``, kept across resumes); None without."""
        try:
            text = (self.path / RUN_ID_FILE).read_text().strip()
        except (OSError, UnicodeDecodeError):
            return None
        return text if text.isalnum() else None

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
    """A run's saved YAML (Hydra's config, overrides, choices), None when absent; one that cannot be read
    is named in a warning and read as absent (the run is still collected)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        log.warning("%s: cannot be read (%s: %s); the run is collected without it", path, type(e).__name__, e)
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        log.warning("%s: not valid YAML; the run is collected without it", where)
        return None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def load_run(path: str | os.PathLike[str]) -> Run:
    """The run in ``path``; a ``metrics.json`` that cannot be read gives a run of status ``unreadable``
    (naming the file) instead of an exception."""
    path = Path(path)
    unreadable = None
    try:
        record = read_metrics(path, strict=True)
    except UnreadableRecord as e:
        record, unreadable = None, e
    except OSError as e:  # permissions, a folder named metrics.json, ...
        record, unreadable = None, UnreadableRecord(path / METRICS_FILE, e)
    rec = record or {}
    # Hydra's .hydra/ when the app keeps it; else the app's own resolved config.yaml and the record's
    # overrides (pws.classify writes both into the run dir).
    overrides = _read_yaml(path / ".hydra" / "overrides.yaml")
    if not isinstance(overrides, list) or not overrides:
        overrides = rec.get("overrides") if isinstance(rec.get("overrides"), list) else []
    config = (_mapping(_read_yaml(path / ".hydra" / "config.yaml"))
              or _mapping(_read_yaml(path / "config.yaml")))
    hydra_cfg = _mapping(_read_yaml(path / ".hydra" / "hydra.yaml"))
    choices = _mapping(_mapping(_mapping(hydra_cfg.get("hydra")).get("runtime")).get("choices"))
    choices = {k: v for k, v in choices.items() if not str(k).startswith("hydra/")}
    process, holder = lock_state(path)
    run = Run(path=path, record=record, overrides=[str(o) for o in overrides], config=config,
              choices=choices, unreadable=unreadable, process=process, holder=holder)
    table, cell = rec.get("table") or config.get("table"), rec.get("cell") or config.get("cell")
    run.table = str(table) if table else None
    run.cell = str(cell) if cell else None
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
                rec = json.loads(p.read_bytes().decode("utf-8"))
            except (OSError, ValueError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
                log.warning("%s: cannot be read (%s: %s); the cell's launch is not reported", p,
                            type(e).__name__, e)
                continue
            if not isinstance(rec, dict):
                log.warning("%s: not a JSON object; the cell's launch is not reported", p)
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


# -- runs.csv --------------------------------------------------------------------------------------------

RUN_FIELDS = ["path", "table", "cell", "seed", "scale", "status", "error"]


def runs_table(runs: Iterable[Run]) -> tuple[list[str], list[list[Any]]]:
    """``runs.csv`` of ``runs``: the header and one line per run, with every numeric key of the records as a
    column. Only a run with a result fills them (finished; diverged: NaN as the paper prints); for a run
    that is running, stopped, failed, incomplete or unreadable they stay empty (its record holds its last
    evaluation, which is not a result) and ``status``/``error`` say what it is."""
    runs = list(runs)
    metrics = sorted({k for r in runs for k, v in (r.record or {}).items()
                      if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "seed"})
    lines = []
    for r in runs:
        done = r.status in DONE_STATUSES
        values = [(r.record or {}).get(m, "") if done else "" for m in metrics]
        lines.append([str(r.path), r.table or "", r.cell or "", "" if r.seed is None else r.seed,
                      r.scale or "", r.status, (r.error or "") if r.status != "finished" else "",
                      *values, " ".join(r.overrides)])
    return [*RUN_FIELDS, *metrics, "overrides"], lines
