"""wandb logging for every run: offline by default (no network), ``WANDB_MODE=online`` or ``disabled``.

Project per table (``pws-<table>``, or ``pws-repro`` for runs outside a table), group per table row, run
name from the cell. ``metrics.json`` stays the source of truth for tables; wandb is the dashboard.

What an app does::

    tracker = Tracker(run_dir, resolved_config)        # project pws-<table>, group = row, name = cell
    tracker.log({"train_loss": ..., "test_error": ...}, step=epoch)     # curves
    tracker.finish(record)                              # final metrics, + paper/<metric>, delta/<metric>

The table and cell come from ``table=``/``cell=`` or from the config's own ``table``/``cell`` keys; explicit
``project``/``group``/``name`` win. ``finish`` writes the final metrics into the run's summary and, for a
cell of the paper's tables, the paper's number and the difference (``paper/<metric>``, ``delta/<metric>``,
from ``results/published.yaml`` through :func:`pws.paper.published.paper_summary`); the table and cell for
that come from the constructor, else from the summary's own ``table``/``cell`` keys (a run record has them).

Layering: this module reads the paper as data (:mod:`pws.paper`) and nothing of :mod:`pws.results`, which
stands on top of :mod:`pws.records`.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from pws.paper.experiments import row_of
from pws.paper.published import paper_summary
from pws.records.metrics_file import atomic_write_bytes

DEFAULT_PROJECT = "pws-repro"
RUN_ID_FILE = "wandb_run_id"  # in the run directory: one wandb run per run directory, across resumes
# Keys of a run record that are not summary material (curves are logged step by step).
_NOT_SUMMARY = ("history",)


class Tracker:
    """A thin wrapper over one wandb run; every call is a no-op when wandb is disabled."""

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        config: dict[str, Any],
        *,
        mode: str | None = None,
        project: str | None = None,
        group: str | None = None,
        name: str | None = None,
        tags: list[str] | None = None,
        table: str | None = None,
        cell: str | None = None,
    ) -> None:
        # The run's table and cell: given, or the resolved config's own `table`/`cell` keys (both apps have
        # them), so that the group (= the table row) and the paper comparison need nothing more.
        cfg = config if isinstance(config, dict) else {}
        self.table = table or cfg.get("table") or None
        self.cell = cell or cfg.get("cell") or None
        if project is None:
            project = f"pws-{self.table}" if self.table else DEFAULT_PROJECT
        if group is None and self.table and self.cell:
            group = row_of(self.table, self.cell) or self.cell
        if name is None and self.cell:
            name = self.cell
        mode = os.environ.get("WANDB_MODE") or mode or "offline"
        self.run = None
        if mode == "disabled":
            return
        import wandb

        self.run = wandb.init(
            dir=str(Path(run_dir)),
            id=run_id(run_dir),
            resume="allow",
            mode=mode,
            project=project,
            group=group,
            name=name,
            tags=tags,
            config=config,
            reinit="finish_previous",
            settings=wandb.Settings(silent=True, console="off"),
        )

    @property
    def run_folder(self) -> Path | None:
        """The folder wandb writes this run into (``wandb sync <folder>`` uploads an offline run)."""
        return Path(self.run.dir).parent if self.run is not None else None

    def log(self, values: dict[str, Any], step: int | None = None) -> None:
        if self.run is not None:
            self.run.log(values, step=step)

    def finish(self, summary: dict[str, Any]) -> None:
        """Write the final metrics and ``paper/*``, ``delta/*`` of the run's cell into the summary; close."""
        if self.run is None:
            return
        for key, value in summary_with_paper(summary, self.table, self.cell).items():
            self.run.summary[key] = value
        self.run.finish()
        self.run = None


def run_id(run_dir: str | os.PathLike[str]) -> str:
    """The wandb run id of ``run_dir``: made once and kept in ``<run_dir>/wandb_run_id``, so that a resumed
    run (any number of times) continues the same wandb run."""
    path = Path(run_dir) / RUN_ID_FILE
    try:
        existing = path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        existing = ""
    if existing.isalnum():
        return existing
    new = uuid.uuid4().hex[:12]
    atomic_write_bytes(path, f"{new}\n".encode())  # a kill mid-write leaves the old state, never an empty id
    return new


def summary_with_paper(summary: dict[str, Any], table: str | None = None,
                       cell: str | None = None) -> dict[str, Any]:
    """``summary`` without its curves, plus ``paper/<m>`` and ``delta/<m>`` when it is a cell of the paper.

    ``table``/``cell`` default to the summary's own ``table``/``cell`` keys (a run record has them).
    """
    out = {k: v for k, v in summary.items() if k not in _NOT_SUMMARY}
    out.update(paper_summary(table or summary.get("table"), cell or summary.get("cell"), summary))
    return out


def _offline_records(run_folder: str | os.PathLike[str]) -> list[Any]:
    """The protobuf records of an offline wandb run's ``run-<id>.wandb`` file (LevelDB-style log blocks)."""
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    files = sorted(Path(run_folder).glob("run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"no run-*.wandb file in {run_folder}")
    data = files[0].read_bytes()
    block, header = 32768, 7
    chunks, pending, pos = [], b"", header
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            break
        if kind == 1:
            chunks.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            chunks.append(pending + chunk)
    records = []
    for raw in chunks:
        rec = pb.Record()
        rec.ParseFromString(raw)
        records.append(rec)
    return records


def read_offline_run(run_folder: str | os.PathLike[str], wait_s: float = 30.0) -> dict[str, Any]:
    """What an offline wandb run holds, read back from its ``run-<id>.wandb`` file: ``project``, ``group``,
    ``name``, ``summary`` (final values), ``history`` (the logged steps' keys).

    Offline runs write no ``wandb-summary.json``; this reads the run's transaction log (wandb's own format)
    so that a test or a user can check what ``wandb sync`` will upload. Values are decoded from JSON.
    wandb's service process may still be writing the file when ``finish()`` returns: this waits up to
    ``wait_s`` seconds for the run's exit record.
    """
    import json
    import time

    def decode(text: str) -> Any:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text

    deadline = time.monotonic() + wait_s
    records = _offline_records(run_folder)
    while not any(r.WhichOneof("record_type") == "exit" for r in records) and time.monotonic() < deadline:
        time.sleep(0.2)
        records = _offline_records(run_folder)
    out: dict[str, Any] = {"summary": {}, "history": []}
    for rec in records:
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out.update(project=rec.run.project, group=rec.run.run_group, name=rec.run.display_name)
        elif kind == "summary":
            for item in rec.summary.update:
                out["summary"][item.key or "/".join(item.nested_key)] = decode(item.value_json)
        elif kind == "history":
            out["history"].append({item.key or "/".join(item.nested_key): decode(item.value_json)
                                   for item in rec.history.item})
    return out


def read_offline_summary(run_folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The summary of an offline wandb run (see :func:`read_offline_run`)."""
    return read_offline_run(run_folder)["summary"]
