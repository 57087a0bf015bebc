"""Checkpoints of a run: everything needed to continue exactly where it stopped, written atomically.

``<run_dir>/checkpoints/last.pt`` holds the model, the optimizer, the AMP scaler, the EMA weights, the
training position (completed epochs, steps done in the current epoch, the current epoch's running sums),
the history, the timers, and the random-number states of every rank (torch CPU and CUDA, numpy, python).
It is written to a temporary file in the same folder and renamed over the old one (``os.replace``), so a
kill at any moment leaves either the old or the new checkpoint, never half of one. Loading uses
``torch.load(weights_only=True)``: the file holds tensors and plain Python values only.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pws.runs.record import atomic_write_bytes

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_FILE = "last.pt"
FORMAT_VERSION = 1


def checkpoint_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / CHECKPOINT_FILE


def save(path: str | Path, state: dict[str, Any]) -> None:
    """Atomically write ``state`` (tensors and plain values) to ``path``."""
    buffer = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **state}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load(path: str | Path) -> dict[str, Any] | None:
    """The checkpoint at ``path`` (on the CPU), or None if there is none."""
    path = Path(path)
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("format_version") != FORMAT_VERSION:
        raise RuntimeError(
            f"{path} has checkpoint format {state.get('format_version')!r}, this code reads "
            f"{FORMAT_VERSION}: delete it (or rerun with force=true) to start the run again"
        )
    return state


def rng_state() -> dict[str, Any]:
    """The random-number states of this process, as tensors and plain values."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "kind": np_state[0],
            "key": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_version, "internal": list(py_internal), "gauss": py_gauss},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))  # fmt: skip
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
