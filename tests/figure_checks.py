"""A drawn PNG checked by its pixels, not by its file size (``tests/`` is on ``sys.path``: ``import
figure_checks``): the size the figure was drawn at, ink on the canvas, and the colours of the series drawn."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image


def rgb(color: str) -> tuple[int, int, int]:
    """``#rrggbb`` as an RGB triple."""
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def over_white(color: str, alpha: float) -> str:
    """The colour ``color`` drawn with opacity ``alpha`` shows on a white canvas."""
    return "#" + "".join(f"{round(alpha * c + (1 - alpha) * 255):02x}" for c in rgb(color))


def pixels_of(image: np.ndarray, color: str, tolerance: int = 12) -> int:
    """How many pixels of an RGB image are ``color`` (each channel within ``tolerance``)."""
    return int((np.abs(image.astype(int) - np.array(rgb(color))) <= tolerance).all(axis=2).sum())


def assert_drawn(
    path: Path, size: tuple[int, int], colors: Sequence[str] = (), min_pixels: int = 30
) -> np.ndarray:
    """``path`` is a PNG of ``size`` (width, height) with ink on at least 1% of it and at least
    ``min_pixels`` pixels of each of ``colors``; returns its RGB pixels."""
    with Image.open(path) as img:
        assert img.size == size, (path, img.size)
        image = np.asarray(img.convert("RGB"))
    ink = (image < 235).any(axis=2).mean()
    assert ink > 0.01, (path, ink)
    for color in colors:
        assert pixels_of(image, color) >= min_pixels, (path, color)
    return image
