"""The run record: ``metrics.json`` in the run directory, the one source of truth for result tables.

Shape shared by ``pws.classify`` and ``pws.detect`` (keys beyond these are allowed)::

    {
      "task": "classify" | "detect",
      "status": "running" | "finished" | "diverged" | "failed",
      "scale": "smoke" | "full",
      "seed": 0,
      "table": "table4" | null, "cell": "residual/lr0.1/pws" | null,
      "method": "pws", "model": "plain_c", "data": "digits",
      "overrides": ["norm=pws", ...],
      "top1_error": 6.5,                   # classification, %, NaN if diverged
      "mAP": 77.5, "bbox_mAP": ..., ...    # detection
      "history": [{"epoch": 1, "train_loss": ..., "test_error": ...}, ...],
      "images_per_s": ..., "wall_time_s": ...,
      "git_commit": "...", "git_dirty": false, "versions": {"torch": "...", ...},
      "error": "message"                   # when failed
    }

NaN is written as the JSON token ``NaN`` (Python's json reads it back), as the paper's tables print NaN.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.json"
DONE_STATUSES = ("finished", "diverged")
PACKAGES = ("torch", "torchvision", "hydra-core", "mmengine", "mmcv", "mmdet", "wandb", "pws-repro")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_metrics(run_dir: str | os.PathLike[str], record: dict[str, Any]) -> Path:
    """Atomically write ``record`` as ``<run_dir>/metrics.json``; return its path."""
    path = Path(run_dir) / METRICS_FILE
    atomic_write_bytes(path, (json.dumps(record, indent=2, sort_keys=True, default=str) + "\n").encode())
    return path


class UnreadableRecord(ValueError):
    """A ``metrics.json`` that exists but is not a JSON object (garbage, binary bytes, cut short)."""

    def __init__(self, path: Path, cause: BaseException) -> None:
        self.path = path
        super().__init__(f"unreadable metrics.json: {path} ({type(cause).__name__}: {cause})")


def read_metrics(run_dir: str | os.PathLike[str], strict: bool = False) -> dict[str, Any] | None:
    """The run's record, or None if it has none. A file that cannot be parsed raises
    :class:`UnreadableRecord` (naming it) with ``strict=True``, and reads as None otherwise."""
    path = Path(run_dir) / METRICS_FILE
    try:
        record = json.loads(path.read_bytes().decode("utf-8"))
        if not isinstance(record, dict):
            raise ValueError(f"a JSON {type(record).__name__}, not an object")
        return record
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        if strict:
            raise UnreadableRecord(path, e) from e
        return None


def environment_info() -> dict[str, Any]:
    """Git commit of the project and versions of the packages that decide the numbers."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {**git_state(), "versions": versions}


def git_state(checkout: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """``git_commit`` (HEAD) and ``git_dirty`` (tracked files changed since it) of the checkout this package
    runs from, or of ``checkout``; both None outside a git checkout or without git."""
    cwd = Path(checkout) if checkout is not None else Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD") or None
    changes = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"git_commit": commit, "git_dirty": None if changes is None else bool(changes)}
