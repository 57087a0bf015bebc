"""The checkpoints of a run: mmengine's, found, checked before a resume, moved aside when unreadable.

Where they are: ``<run_dir>/epoch_<N>.pth`` (mmengine's ``CheckpointHook``, every epoch) and
``<run_dir>/preempted_iter_<N>.pth`` (:mod:`pws.engine.hooks.preemption`); ``<run_dir>/last_checkpoint``
names the newest. :func:`latest_checkpoint` reads that pointer and :func:`check_readable` loads the file
once before the Runner is built, so an unreadable checkpoint ends the run with its path and the way out
(``force=true`` moves it aside with :func:`move_aside` and starts again; nothing is deleted).

Loading mmengine's own checkpoints under torch >= 2.6 (``torch.load`` defaults to ``weights_only=True``):

mmengine 0.10.7 calls ``torch.load(filename, map_location=...)`` without ``weights_only``. torch >= 2.6 then
uses its weights-only unpickler, which refuses the Python objects mmengine itself pickles into every
checkpoint: the message hub's :class:`mmengine.logging.HistoryBuffer` (loss and time histories) and the
numpy arrays, dtypes and scalars inside it. Resuming a run would fail with "Weights only load failed".

The fix here is explicit and scoped, not a global switch: :func:`trusted_checkpoint_types` lists exactly
those types (and ``getattr``, with which a HistoryBuffer pickles its statistics methods), and
:func:`mmengine_checkpoints` is a context manager that allows them to the weights-only
unpickler (``torch.serialization.safe_globals``) while the Runner trains or tests. Loads stay weights-only:
any other pickled object is still refused, and ``weights_only=False`` is never used.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch


def trusted_checkpoint_types() -> list[Any]:
    """The non-tensor types of an mmengine checkpoint: HistoryBuffer and the numpy pieces it holds."""
    from mmengine.logging import HistoryBuffer

    # getattr: a HistoryBuffer pickles its statistics methods as getattr(HistoryBuffer, 'min'), ... The
    # weights-only unpickler still calls only allow-listed callables, so what getattr returns is never run.
    types: list[Any] = [HistoryBuffer, getattr, np.ndarray, np.dtype]
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    types += [_reconstruct, scalar]
    # The dtype classes (numpy.dtypes.Float64DType, ...) that pickled dtypes reconstruct from.
    for name in ("float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool_"):
        types.append(type(np.dtype(getattr(np, name))))
    return types


@contextlib.contextmanager
def mmengine_checkpoints() -> Iterator[None]:
    """Within this block, ``torch.load`` accepts mmengine's checkpoints and stays weights-only."""
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    if safe_globals is None:  # torch < 2.5: weights_only was not the default
        yield
        return
    with safe_globals(trusted_checkpoint_types()):
        yield


LAST_CHECKPOINT = "last_checkpoint"


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint to resume ``run_dir`` from: the one ``<run_dir>/last_checkpoint`` names, in
    ``run_dir``; None when the run has none.

    mmengine writes the absolute path; a run directory that was moved or copied (to another disk, from a
    cluster) must resume from its own file of that name, never from the original location's.

    A kill -9 can leave the pointer behind the files: mmengine's ``CheckpointHook`` saves the new
    checkpoint, deletes the old ones (``max_keep_ckpts``), and only then rewrites the pointer (truncating
    it first). When the pointer is missing, empty or names a file that is gone, the newest checkpoint of
    the run directory that loads is taken (:func:`newest_readable`).
    """
    run_dir = Path(run_dir)
    pointer = run_dir / LAST_CHECKPOINT
    try:
        text = pointer.read_text().strip() if pointer.is_file() else ""
    except (OSError, UnicodeDecodeError) as e:
        raise UnreadableCheckpoint(pointer, e) from e
    named = run_dir / Path(text).name if text else None
    if named is not None and named.is_file():
        return named
    return newest_readable(run_dir)


def newest_readable(run_dir: Path) -> Path | None:
    """The most recently written ``*.pth`` of ``run_dir`` that loads (a kill mid-save leaves a truncated
    one: it is passed over, and the run trains that epoch again); None if there is none."""
    for path in sorted(run_dir.glob("*.pth"), key=lambda p: p.stat().st_mtime_ns, reverse=True):
        try:
            check_readable(path)
        except UnreadableCheckpoint:
            continue
        return path
    return None


class UnreadableCheckpoint(RuntimeError):
    """A checkpoint (or the pointer to it) that cannot be loaded; the message names the file."""

    def __init__(self, path: Path, cause: BaseException) -> None:
        self.path = path
        super().__init__(f"cannot read checkpoint {path} ({type(cause).__name__}: {cause})")


def check_readable(path: Path) -> None:
    """Load ``path`` once (on the CPU, weights only); raise :class:`UnreadableCheckpoint` if that fails."""
    if not path.is_file():
        raise UnreadableCheckpoint(path, FileNotFoundError("the file does not exist"))
    try:
        with mmengine_checkpoints():
            torch.load(path, map_location="cpu")
    except Exception as e:  # a truncated zip, a foreign pickle, ...: named, not a traceback
        raise UnreadableCheckpoint(path, e) from e


def move_aside(run_dir: str | Path) -> list[Path]:
    """Rename every checkpoint of the run and its pointer to ``<name>.unused-<n>``; return the new paths."""
    run_dir = Path(run_dir)
    moved = []
    for path in [*run_dir.glob("*.pth"), run_dir / LAST_CHECKPOINT]:
        if path.is_file():
            n = 1
            while (target := path.with_name(f"{path.name}.unused-{n}")).exists():
                n += 1
            path.rename(target)
            moved.append(target)
    return moved


def remove_partial_writes(run_dir: str | Path) -> list[Path]:
    """Delete the temporary files of writes that a kill interrupted (``.<name>.*.tmp``); return them."""
    removed = []
    for path in Path(run_dir).glob(".*.tmp"):
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed
