"""What the generated classification sets (synthetic CIFAR-10 and ImageNet) share: images and file handling.

Images: class ``c`` of ``K`` is a sinusoidal grating with its own orientation (``pi * c / K``), spatial
frequency (one of three) and colour (hue ``c / K``); each image draws a random phase, a small jitter of
orientation and frequency, a random contrast and brightness, and Gaussian pixel noise. The classes are easy
on purpose (colour and grating each carry the class): the sets exist to run the real loaders and training
loops, and a small CNN learns them in a few epochs.

Files: a generated set is written into a temporary folder beside its destination and moved into place with
one ``rename`` (atomic on one file system), with a marker file ``synthetic.json`` recording how it was made;
a later call with the same options reuses it, other options replace it. A folder without a marker is never
touched (it may be the real data set).
"""

from __future__ import annotations

import colorsys
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

MARKER = "synthetic.json"

CYCLES = (2.0, 3.5, 5.0)  # spatial frequencies in cycles per image side


def class_colors(num_classes: int) -> np.ndarray:
    """``(num_classes, 3)`` RGB colours in [0.2, 1], evenly spaced hues."""
    return np.array(
        [colorsys.hsv_to_rgb(c / num_classes, 0.75, 0.9) for c in range(num_classes)], dtype=np.float32
    ).clip(0.2, 1.0)


def pattern_images(
    labels: np.ndarray, num_classes: int, height: int, width: int, rng: np.random.Generator
) -> np.ndarray:
    """Images for ``labels`` as uint8 ``(N, height, width, 3)``, drawn from ``rng``."""
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    yy, xx = np.meshgrid(
        np.linspace(0.0, 1.0, height, dtype=np.float32),
        np.linspace(0.0, 1.0, width, dtype=np.float32),
        indexing="ij",
    )
    theta = np.pi * labels / num_classes + rng.normal(0.0, 0.05, n)
    cycles = np.asarray(CYCLES, dtype=np.float32)[labels % len(CYCLES)] * rng.uniform(0.9, 1.1, n)
    phase = rng.uniform(0.0, 2 * np.pi, n)
    proj = np.cos(theta)[:, None, None] * xx + np.sin(theta)[:, None, None] * yy
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * cycles[:, None, None] * proj + phase[:, None, None])
    contrast = rng.uniform(0.6, 1.0, n)[:, None, None, None]
    brightness = rng.uniform(-0.1, 0.1, n)[:, None, None, None]
    colors = class_colors(num_classes)[labels][:, None, None, :]
    images = 0.15 + contrast * wave[..., None] * colors + brightness
    images = images + rng.normal(0.0, 0.08, images.shape)
    return (images.clip(0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def balanced_labels(count: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` labels, each class as often as possible (differing by at most one), in random order."""
    return rng.permutation(np.arange(count) % num_classes)


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The options recorded in ``folder/synthetic.json``, or None if there is no readable marker."""
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None


def write_marker(folder: Path, options: dict[str, Any]) -> None:
    """Write ``folder/synthetic.json`` atomically (temporary file + rename)."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{MARKER}.")
    with os.fdopen(fd, "w") as f:
        json.dump(options, f, indent=1, sort_keys=True)
    os.replace(tmp, folder / MARKER)


def make_temp_dir(beside: Path) -> Path:
    """A fresh hidden folder next to ``beside`` (same file system, so that ``rename`` is atomic)."""
    beside.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=beside.parent, prefix=f".{beside.name}.tmp-"))
    tmp.chmod(0o755)  # mkdtemp makes it private; the published folder should read like any other
    return tmp


def publish(tmp: Path, final: Path, options: dict[str, Any]) -> None:
    """Move the finished folder ``tmp`` (with its marker) to ``final``, replacing an earlier generated one.

    If another process published ``final`` with the same ``options`` in the meantime, its copy wins and
    ``tmp`` is removed.
    """
    if read_marker(final) == options:
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old = None
    if final.exists():
        old = make_temp_dir(final)
        os.replace(final, old / final.name)
    try:
        os.rename(tmp, final)
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
