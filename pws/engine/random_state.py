"""The random states of a process (python, numpy, torch, CUDA), read and put back as plain values."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def get_random_state() -> dict[str, Any]:
    """Every random generator's state in this process (what a checkpoint keeps for an exact resume)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": _numpy_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(state: dict[str, Any]) -> None:
    """Put back the states :func:`get_random_state` returned."""
    random.setstate(_as_python_state(state["python"]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.as_tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def _numpy_state() -> tuple[Any, ...]:
    """numpy's legacy global state with its key as a list (a weights-only checkpoint loads it back)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return (name, keys.tolist(), int(pos), int(has_gauss), float(cached))


def _as_python_state(value: Any) -> tuple[Any, ...]:
    """random's state as the nested tuple it wants (a checkpoint may give lists back)."""
    version, internal, gauss = value
    return (version, tuple(internal), gauss)
