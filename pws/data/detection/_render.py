"""Rendering shared by the synthetic VOC and COCO generators: textured backgrounds and class-coded shapes.

Each class is a shape, or a (shape, colour group) pair where there are more classes than shapes
(``class_style``), so that a small detector trained for minutes can tell the classes apart after SSD's
photometric augmentation (mmdet's PhotoMetricDistortion:
brightness, contrast, saturation, hue +-36 degrees and, half of the time, a random permutation of the
colour channels). A permutation turns red into green or blue, so a hue alone does not survive it; what
survives is how many channels are high: the two groups are the primaries (one channel high: red, green,
blue) and the secondaries (two high: yellow, cyan, magenta), each object drawn in a random member of its
class's colours. Up to ``len(SHAPES)`` classes are the shapes alone, in any of the six colours (the smoke
scale's sets: a small detector trained for minutes still confuses the two groups); up to
``2 * len(SHAPES)`` (a VOC set's 20) the shapes x the two groups; more (COCO's 80) use eight hues 45
degrees apart, one per class, which the channel permutation can confuse.
The background is a low-saturation texture (smooth noise, stripes, a gradient) that never has the
saturated object colours. Everything is driven by a ``numpy.random.Generator`` so that a seed gives the
same pixels.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np
from PIL import ImageDraw

Polygon = list[tuple[float, float]]
Colour = tuple[int, int, int]

# Shapes, as functions of (cx, cy, w, h) returning one or more polygons ("split" is an object in two parts,
# as an occluded COCO object whose segmentation has two polygons). The first ones are the most different
# from each other: a set with few classes uses them.
SHAPES = (
    "rectangle",
    "triangle",
    "ellipse",
    "cross",
    "split",
    "star",
    "diamond",
    "hexagon",
    "pentagon",
    "trapezoid",
)
# The two colour groups that survive a permutation of the channels: one channel high, or two.
COLOUR_GROUPS: tuple[tuple[Colour, ...], ...] = (
    ((235, 35, 35), (35, 235, 35), (35, 35, 235)),  # primaries
    ((235, 235, 35), (35, 235, 235), (235, 35, 235)),  # secondaries
)
HUES_BEYOND_GROUPS = 8  # colours of the classes of a set with more than 2 * len(SHAPES) classes


@dataclass(frozen=True)
class Style:
    """A class's shape and the colours its objects are drawn in (one chosen at random per object)."""

    shape: str
    colours: tuple[Colour, ...]

    def colour(self, rng: np.random.Generator) -> Colour:
        """One of the class's colours, drawn with ``rng``."""
        return self.colours[int(rng.integers(len(self.colours)))]


def class_style(index: int, num_classes: int) -> Style:
    """The shape and colours of class ``index`` of ``num_classes``, with as few colour distinctions as the
    number of classes needs: up to ``len(SHAPES)`` classes, shape ``SHAPES[index]`` in any of the six
    colours of both groups (a set of 4 classes: rectangles, triangles, ellipses, crosses); up to
    ``2 * len(SHAPES)`` (a VOC set's 20), shape ``SHAPES[index // 2]`` in colour group ``index % 2``; more
    (COCO's 80), shape ``index % S`` in one of eight hues (``index // S``), ``S = ceil(num_classes / 8)``.
    Every class is a different (shape, colours) pair."""
    groups = len(COLOUR_GROUPS)
    if not 0 <= index < num_classes or num_classes > len(SHAPES) * HUES_BEYOND_GROUPS:
        raise ValueError(
            f"class {index} of {num_classes}: the generators draw 1 to {len(SHAPES) * HUES_BEYOND_GROUPS}"
        )
    if num_classes <= len(SHAPES):
        return Style(SHAPES[index], tuple(c for group in COLOUR_GROUPS for c in group))
    if num_classes <= groups * len(SHAPES):
        return Style(SHAPES[index // groups], COLOUR_GROUPS[index % groups])
    n_shapes = math.ceil(num_classes / HUES_BEYOND_GROUPS)
    r, g, b = colorsys.hsv_to_rgb((index // n_shapes) / HUES_BEYOND_GROUPS, 0.9, 0.95)
    return Style(SHAPES[index % n_shapes], ((round(r * 255), round(g * 255), round(b * 255)),))


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
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, polygons: list[Polygon], colour: Colour
) -> None:
    """Fills the polygons in a jittered version of ``colour`` with a darker outline."""
    jitter = rng.integers(-20, 21, size=3)
    fill = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(colour, jitter, strict=True))
    outline = tuple(int(c * 0.55) for c in fill)
    for poly in polygons:
        draw.polygon(poly, fill=fill, outline=outline)


def polygon_area(poly: Polygon) -> float:
    """Shoelace area of a simple polygon."""
    s = 0.0
    for (x1, y1), (x2, y2) in zip(poly, poly[1:] + poly[:1], strict=True):
        s += x1 * y2 - x2 * y1
    return abs(s) / 2.0

