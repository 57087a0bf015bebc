"""Rendering shared by the synthetic VOC and COCO generators: textured backgrounds and class-coded shapes.

Each class is drawn as one polygon shape in one colour (``class_style``), so a detector has something
learnable: the shape and the hue tell the class, the background is a low-saturation texture (smooth noise,
stripes, a gradient) that never has the saturated object colours. Everything is driven by a
``numpy.random.Generator`` so that a seed gives the same pixels.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

Polygon = list[tuple[float, float]]

# Shapes, as functions of (cx, cy, w, h) returning one or more polygons (the last one, "split", is an
# object in two parts, as an occluded COCO object whose segmentation has two polygons).
SHAPES = (
    "rectangle",
    "ellipse",
    "triangle",
    "diamond",
    "hexagon",
    "star",
    "cross",
    "pentagon",
    "trapezoid",
    "split",
)


@dataclass(frozen=True)
class Style:
    shape: str
    color: tuple[int, int, int]


def class_style(index: int, num_classes: int) -> Style:
    """The shape and colour of class ``index``: shapes cycle, hues are spread over the circle.

    Classes sharing a shape (index differing by a multiple of len(SHAPES)) get hues far apart.
    """
    shape = SHAPES[index % len(SHAPES)]
    hue = (index * 0.618033988749895) % 1.0  # golden-ratio hue steps: neighbours differ
    value = 0.95 if (index // len(SHAPES)) % 2 == 0 else 0.75
    r, g, b = colorsys.hsv_to_rgb(hue, 0.9, value)
    return Style(shape, (round(r * 255), round(g * 255), round(b * 255)))


def shape_polygons(shape: str, cx: float, cy: float, w: float, h: float) -> list[Polygon]:
    """The polygon(s) of ``shape`` filling the box of width ``w`` and height ``h`` centred at (cx, cy)."""
    hw, hh = w / 2.0, h / 2.0

    def regular(n: int, start: float) -> Polygon:
        return [
            (cx + hw * math.cos(start + 2 * math.pi * k / n), cy + hh * math.sin(start + 2 * math.pi * k / n))
            for k in range(n)
        ]

    if shape == "rectangle":
        return [[(cx - hw, cy - hh), (cx + hw, cy - hh), (cx + hw, cy + hh), (cx - hw, cy + hh)]]
    if shape == "ellipse":
        return [regular(24, 0.0)]
    if shape == "triangle":
        return [[(cx, cy - hh), (cx + hw, cy + hh), (cx - hw, cy + hh)]]
    if shape == "diamond":
        return [[(cx, cy - hh), (cx + hw, cy), (cx, cy + hh), (cx - hw, cy)]]
    if shape == "hexagon":
        return [regular(6, 0.0)]
    if shape == "pentagon":
        return [regular(5, -math.pi / 2)]
    if shape == "star":
        pts = []
        for k in range(10):
            a = -math.pi / 2 + math.pi * k / 5
            r = 1.0 if k % 2 == 0 else 0.45
            pts.append((cx + hw * r * math.cos(a), cy + hh * r * math.sin(a)))
        return [pts]
    if shape == "cross":
        aw, ah = hw / 3.0, hh / 3.0
        return [
            [
                (cx - aw, cy - hh), (cx + aw, cy - hh), (cx + aw, cy - ah), (cx + hw, cy - ah),
                (cx + hw, cy + ah), (cx + aw, cy + ah), (cx + aw, cy + hh), (cx - aw, cy + hh),
                (cx - aw, cy + ah), (cx - hw, cy + ah), (cx - hw, cy - ah), (cx - aw, cy - ah),
            ]
        ]  # fmt: skip
    if shape == "trapezoid":
        return [[(cx - hw / 2, cy - hh), (cx + hw / 2, cy - hh), (cx + hw, cy + hh), (cx - hw, cy + hh)]]
    if shape == "split":  # two bars with a gap: one object, two polygons
        gap = w / 5.0
        left = [(cx - hw, cy - hh), (cx - gap / 2, cy - hh), (cx - gap / 2, cy + hh), (cx - hw, cy + hh)]
        right = [(cx + gap / 2, cy - hh), (cx + hw, cy - hh), (cx + hw, cy + hh), (cx + gap / 2, cy + hh)]
        return [left, right]
    raise ValueError(f"unknown shape {shape!r}")


def background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A low-saturation textured background, ``uint8`` array of shape (height, width, 3)."""
    # smooth noise: a coarse random grid upsampled bilinearly
    gh, gw = int(rng.integers(3, 9)), int(rng.integers(3, 9))
    grid = rng.uniform(0.0, 1.0, size=(gh, gw)).astype(np.float32)
    ys = np.linspace(0, gh - 1, height, dtype=np.float32)
    xs = np.linspace(0, gw - 1, width, dtype=np.float32)
    y0 = np.clip(np.floor(ys).astype(int), 0, gh - 2) if gh > 1 else np.zeros(height, int)
    x0 = np.clip(np.floor(xs).astype(int), 0, gw - 2) if gw > 1 else np.zeros(width, int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    g00, g01 = grid[y0][:, x0], grid[y0][:, x0 + 1]
    g10, g11 = grid[y0 + 1][:, x0], grid[y0 + 1][:, x0 + 1]
    smooth = (g00 * (1 - fx) + g01 * fx) * (1 - fy) + (g10 * (1 - fx) + g11 * fx) * fy

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, math.pi)
    period = rng.uniform(8.0, 40.0)
    stripes = 0.5 + 0.5 * np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period)
    gradient = (xx / max(width - 1, 1)) if rng.random() < 0.5 else (yy / max(height - 1, 1))

    weights = rng.dirichlet((2.0, 1.0, 1.0))
    lum = weights[0] * smooth + weights[1] * stripes * rng.uniform(0.2, 0.6) + weights[2] * gradient
    lum = 60.0 + 140.0 * (lum - lum.min()) / max(float(lum.max() - lum.min()), 1e-6)
    tint = rng.uniform(-18.0, 18.0, size=3).astype(np.float32)  # a faint colour cast, far from saturated
    img = lum[..., None] + tint[None, None, :] + rng.normal(0.0, 6.0, size=(height, width, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def draw_object(
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, polygons: list[Polygon], color: tuple[int, int, int]
) -> None:
    """Fills the polygons in a jittered version of ``color`` with a darker outline."""
    jitter = rng.integers(-20, 21, size=3)
    fill = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(color, jitter, strict=True))
    outline = tuple(int(c * 0.55) for c in fill)
    for poly in polygons:
        draw.polygon(poly, fill=fill, outline=outline)


def polygon_area(poly: Polygon) -> float:
    """Shoelace area of a simple polygon."""
    s = 0.0
    for (x1, y1), (x2, y2) in zip(poly, poly[1:] + poly[:1], strict=True):
        s += x1 * y2 - x2 * y1
    return abs(s) / 2.0


def save_jpeg(img: Image.Image | np.ndarray, path) -> None:
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    img.save(path, format="JPEG", quality=90)
