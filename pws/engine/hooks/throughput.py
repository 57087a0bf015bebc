"""Training throughput: images per second over the steady-state iterations (Table 1's FPS column).

Each iteration's forward, backward and optimizer step is timed (data loading excluded), the GPU
synchronized before each clock reading, after ``warmup_iters`` iterations of each session; images are
counted over all ranks. The totals travel in the checkpoint, so a resumed run reports its whole training.
``peak_memory_mb``: the process' peak memory when training ends (CUDA's max allocated on a GPU, the peak
resident set size on a CPU), what a run needs of its device; ``train_device``: that device, in words.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from typing import Any

import torch
from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from pws.engine.outputs import batch_size

KEY = "pws_throughput"


def _synchronize() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def peak_memory_mb() -> float:
    """This process' peak memory in MiB: CUDA's max allocated when CUDA is in use, else the peak RSS."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def device_name() -> str:
    """The device this process trains on: the CUDA device's name, else ``cpu, N threads``."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.get_device_name()
    return f"cpu, {torch.get_num_threads()} threads"


@HOOKS.register_module(name="ThroughputHook", force=True)
class ThroughputHook(Hook):
    """``train_fps``: images per second of training iterations after ``warmup_iters`` warm-up iterations."""

    priority = "VERY_HIGH"

    def __init__(self, warmup_iters: int = 50) -> None:
        if warmup_iters < 0:
            raise ValueError(f"warmup_iters must be >= 0, got {warmup_iters}")
        self.warmup_iters = warmup_iters
        self.seen = 0  # iterations of this session
        self.images = 0.0  # images and seconds of the timed iterations, all sessions
        self.seconds = 0.0
        self.rates: list[float] = []  # this session's images/s per timed iteration
        self._start = 0.0

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        _synchronize()
        self._start = time.perf_counter()

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        _synchronize()
        elapsed = time.perf_counter() - self._start
        self.seen += 1
        if self.seen <= self.warmup_iters or elapsed <= 0:
            return
        n = batch_size(data_batch) * get_world_size()
        self.images += n
        self.seconds += elapsed
        self.rates.append(n / elapsed)

    def before_save_checkpoint(self, runner: Any, checkpoint: dict[str, Any]) -> None:
        checkpoint[KEY] = {"images": self.images, "seconds": self.seconds}

    def after_load_checkpoint(self, runner: Any, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get(KEY) or {}
        self.images = float(saved.get("images", 0.0))
        self.seconds = float(saved.get("seconds", 0.0))

    @property
    def train_fps(self) -> float:
        """Images per second over the timed iterations (NaN if none was timed)."""
        return self.images / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "peak_memory_mb": peak_memory_mb(),
            "train_device": device_name(),
            "train_fps": self.train_fps,
            "images_per_s": self.train_fps,
            "train_fps_median": statistics.median(self.rates) if self.rates else float("nan"),
            "train_fps_iters": len(self.rates),
            "train_fps_warmup_iters": self.warmup_iters,
        }
