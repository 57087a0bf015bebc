"""Timing helpers for the benchmarks: warm-up, then steps of several candidates interleaved round-robin.

On a shared, noisy machine the candidates of one comparison are timed in turns (A B C, B C A, C A B, ...), so
that a slow minute slows all of them alike; the median of each candidate's steps is the headline figure and
the fastest step (the least disturbed one) a steadier second figure.

``clock="cpu"`` reads the process's CPU time instead of the wall clock: on one thread it counts the work of
a step but not the time the process waited for a core, so it stays meaningful on a heavily loaded machine
(memory-bandwidth and cache contention still show).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch


@dataclass
class Timing:
    """Wall-clock seconds of each timed step of one candidate."""

    name: str
    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def fastest(self) -> float:
        return min(self.seconds)

    @property
    def spread(self) -> float:
        """(slowest - fastest) / median: how noisy this candidate's steps were."""
        return (max(self.seconds) - min(self.seconds)) / self.median


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def synchronizer(device: torch.device) -> Callable[[], None]:
    """What to call before reading the clock: wait for queued GPU work; nothing on the CPU."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def round_robin(
    steps: Mapping[str, Callable[[], object]],
    warmup: int,
    repeats: int,
    sync: Callable[[], None] = lambda: None,
    *,
    progress: Callable[[str], None] | None = None,
    clock: str = "wall",
) -> dict[str, Timing]:
    """Time ``repeats`` calls of every step, interleaved and rotated each round, after ``warmup`` each."""
    now = CLOCKS[clock]
    names = list(steps)
    for name in names:
        for _ in range(warmup):
            steps[name]()
        sync()
    timings = {name: Timing(name) for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            sync()
            start = now()
            steps[name]()
            sync()
            timings[name].seconds.append(now() - start)
        if progress is not None:
            progress(f"round {r + 1}/{repeats}")
    return timings


def configure_backend(device: torch.device) -> str:
    """Set up the timing conditions and describe them in one line to print beside the results.

    CPU: denormal floats flushed to zero (unnormalized nets, plain conv and PWS, otherwise slow down on them
    and the comparison measures the denormals). GPU: cuDNN picks its fastest conv algorithms
    (``cudnn.benchmark``); TF32 is left at torch's defaults, which are printed.
    """
    versions = f"torch {torch.__version__}, python {platform.python_version()}, {platform.machine()}"
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        return (f"{versions}, {torch.cuda.get_device_name(device)}; cudnn.benchmark on, TF32 for convs "
                f"{'on' if torch.backends.cudnn.allow_tf32 else 'off'}, for matmuls "
                f"{'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}")
    flush = torch.set_flush_denormal(True)
    return (f"{versions}, {torch.get_num_threads()} intra-op threads; denormals flushed to zero "
            f"(torch.set_flush_denormal(True)): {'on' if flush else 'NOT SUPPORTED'}")


def load_average() -> str:
    """The 1-minute load average and the core count, to print beside every measurement."""
    try:
        load = f"{os.getloadavg()[0]:.1f}"
    except OSError:  # not available on this platform
        load = "n/a"
    return f"load average {load} on {os.cpu_count()} cores"
