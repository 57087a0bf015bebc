"""The image files of the real data sets that are not plain RGB JPEGs, for the generated stand-ins.

The real sets have files a loader must cope with: ImageNet's training set has greyscale JPEGs, CMYK JPEGs
(22 of them) and a PNG named ``.JPEG`` (``n02105855_2933.JPEG``); VOC has greyscale and CMYK JPEGs among
its ``.jpg`` files. A generator asked for its quirks (``quirks=True``) writes a few of its images this way
(:func:`save_image`), so that the loaders read such files before they meet them on the real data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# How an image file may differ from a plain RGB JPEG: greyscale JPEG, CMYK JPEG, PNG (under a JPEG's name).
QUIRKS = ("greyscale", "cmyk", "png")
MODES = {None: ("RGB", "JPEG"), "greyscale": ("L", "JPEG"), "cmyk": ("CMYK", "JPEG"), "png": ("RGB", "PNG")}


def save_image(img: Image.Image | np.ndarray, path: Path, quirk: str | None = None, quality: int = 90
               ) -> None:  # fmt: skip
    """Write ``img`` to ``path`` as an RGB JPEG, or with one of :data:`QUIRKS` (whatever the name says)."""
    if quirk not in MODES:
        raise ValueError(f"unknown quirk {quirk!r}; known: {', '.join(QUIRKS)}")
    image = Image.fromarray(img) if isinstance(img, np.ndarray) else img
    mode, file_format = MODES[quirk]
    options = {"quality": quality} if file_format == "JPEG" else {}
    image.convert(mode).save(path, format=file_format, **options)
