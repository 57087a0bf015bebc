"""The device a run trains on, for every app: ``train.device`` checked and resolved, the full scale's refusal
of a CPU nobody asked for, and the device as metrics.json records it.

``train.device``: ``auto`` (CUDA when torch sees a GPU, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``.
mmengine's Runner trains on CUDA whenever torch sees a GPU; ``auto`` on a node without a usable one (a CPU
node by mistake, a driver too old for torch's CUDA) would train on the CPU, which at the full scale takes
weeks: :func:`cpu_fallback` is that refusal's message (the engine raises it before any work, exit 2), and
``train.device=cpu`` says the CPU is meant.
"""

from __future__ import annotations

import platform
import re
from pathlib import Path
from typing import Any

import torch

from pws.engine.process import Process
from pws.engine.schema import Validator

DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
FULL_SCALE = "full"


def resolve_device(v: Validator, key: str = "train.device") -> str | None:
    """``train.device`` checked (one of :data:`DEVICE_RE`; ``cuda`` only where torch sees a GPU) and resolved
    (``auto``: ``cuda`` or ``cpu``); None, with the problem in ``v``, when invalid."""
    device = v.string(key)
    if device is None:
        return None
    if not DEVICE_RE.match(device):
        v.fail(f"{key} must be auto, cpu, cuda or cuda:N, got {device!r}")
        return None
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        v.fail(f"{key}={device} but no CUDA device is available (use {key}=cpu or auto)")
    return device


def trained_on(device: str) -> str:
    """The device mmengine's Runner trains on for the resolved ``train.device``: CUDA whenever torch sees a
    GPU (``CUDA_VISIBLE_DEVICES=`` hides it), else ``device``."""
    return "cuda" if torch.cuda.is_available() and not device.startswith("cuda") else device


def cpu_fallback(scale: str | None, requested: str | None) -> str | None:
    """Why a run of ``scale`` with ``train.device=requested`` must not start: the full scale left to
    ``auto`` where torch sees no GPU (it would train on the CPU for weeks); None otherwise."""
    if scale != FULL_SCALE or requested != "auto" or torch.cuda.is_available():
        return None
    cuda = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
    return (
        f"scale=full would train on the CPU: train.device=auto and torch {torch.__version__} ({cuda}) sees "
        "no CUDA device. On a GPU node check that the driver supports torch's CUDA (nvidia-smi; "
        "python -c 'import torch; print(torch.cuda.is_available())'); to train on the CPU deliberately, "
        "give train.device=cpu"
    )


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``; else what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def device_record(process: Process) -> dict[str, Any]:
    """What the run trains on, for metrics.json: ``device_type`` (``cuda``, or ``cpu``: mmengine's choice),
    ``device_name`` (the GPU's, of this process's local rank, or the CPU's model) and ``device_count`` (the
    devices the run trains on: one GPU per process; on CPUs, the processes)."""
    if torch.cuda.is_available():
        local = process.local_rank % torch.cuda.device_count()
        return {"device_type": "cuda", "device_name": torch.cuda.get_device_name(local),
                "device_count": process.world_size}  # fmt: skip
    return {"device_type": "cpu", "device_name": cpu_name(), "device_count": process.world_size}
