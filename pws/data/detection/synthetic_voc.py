"""A small PASCAL VOC set in the real VOCdevkit layout, generated: the smoke-scale stand-in for VOC07+12.

``generate(root, num_train, num_test, seed)`` writes ``root/VOCdevkit`` as the official archives unpack::

    VOCdevkit/
      VOC2007/{JPEGImages/*.jpg, Annotations/*.xml, ImageSets/Main/{train,val,trainval,test}.txt}
      VOC2012/{JPEGImages/*.jpg, Annotations/*.xml, ImageSets/Main/{train,val,trainval}.txt}

``num_train`` images are split between VOC2007 trainval (the first half, rounded up) and VOC2012 trainval;
``num_test`` images form VOC2007 test. Image ids follow VOC's (``000001``; ``2012_000001``). Images are
``size`` x ``size`` JPEGs (320, the paper's SSD input, by default) with 1 to 3 large objects (sides 0.25-0.6
of the image) of the first ``object_classes`` VOC classes (all 20 by default; the smoke scale uses fewer),
each class a shape and a colour group on a textured background (``_render``). The XML files have VOC's
fields: folder, filename, source, size (width, height, depth), segmented, and per object name, pose,
truncated, difficult and bndbox with 1-based pixel coordinates (xmin = first column + 1, xmax = last
column + 1, as VOC). Objects cut by the border are clipped and marked truncated; small objects are marked
difficult (every split's first image has one, so the metric's ignore path is exercised); the last test
image has no object at all.

``real_sizes=True`` writes VOC's image sizes instead (:mod:`pws.data.real_sizes`: 500x375, 375x500, 500x333,
333x500 in turn, both orientations in every split of two images or more), for a rehearsal at full size.

``quirks=True`` adds what the real files have beyond that (:mod:`pws.data.quirks`): VOC2007 trainval's first
image is a greyscale JPEG and VOC2007 test's first a CMYK JPEG, VOC2012 trainval's first image has one object
only, a difficult one, every object has an ``<occluded>`` flag (1 when its box overlaps another object's)
and each image's first object has ``<part>`` elements (a head and a hand, with their own ``<bndbox>``, as
VOC's person layout), which the detection loaders ignore.

Deterministic for a seed; calling it again with the same arguments returns at once (see ``_layout``).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pws.data.detection._layout import build_once
from pws.data.detection._render import background, class_style, draw_object, shape_polygons
from pws.data.quirks import save_image
from pws.data.real_sizes import marker_entry, real_size

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
POSES = ("Left", "Right", "Frontal", "Rear", "Unspecified")
DIFFICULT_MAX_SIDE = 20  # objects whose visible box is smaller than this (pixels) are marked difficult
# Few, large objects, so that a small SSD learns them in minutes: 1 to MAX_OBJECTS per image, sides a
# fraction SIDE_RANGE of the image, overlapping another object's box by at most MAX_IOU.
MAX_OBJECTS = 3
SIDE_RANGE = (0.25, 0.6)
MAX_IOU = 0.1


def _place_objects(
    rng: np.random.Generator, width: int, height: int, want_difficult: bool, object_classes: int
) -> list[dict]:
    """Random objects hardly overlapping each other (IoU <= MAX_IOU) for one image, in drawing order; their
    sides a fraction of the image's shorter side."""
    size = min(width, height)
    objects: list[dict] = []
    n = int(rng.integers(1, MAX_OBJECTS + 1))
    kinds = ["small"] * int(want_difficult) + ["normal"] * n
    if rng.random() < 0.1:
        kinds.append("small")
    for kind in kinds:
        for _ in range(30):
            cls = int(rng.integers(object_classes))
            style = class_style(cls, object_classes)
            if kind == "small":
                w = h = float(rng.integers(10, DIFFICULT_MAX_SIDE - 2))
            else:
                w = float(rng.uniform(*SIDE_RANGE) * size)
                h = float(np.clip(w * math.exp(rng.uniform(-0.4, 0.4)), SIDE_RANGE[0] * size, 0.7 * size))
            truncated_try = kind == "normal" and rng.random() < 0.15
            margin = -0.35 if truncated_try else 0.5  # fraction of the size allowed outside the image
            cx = float(rng.uniform(w * margin, width - w * margin))
            cy = float(rng.uniform(h * margin, height - h * margin))
            polys = [[(round(x), round(y)) for x, y in p] for p in shape_polygons(style.shape, cx, cy, w, h)]
            xs = [x for p in polys for x, _ in p]
            ys = [y for p in polys for _, y in p]
            x0, y0 = max(min(xs), 0), max(min(ys), 0)
            x1, y1 = min(max(xs), width - 1), min(max(ys), height - 1)
            if x1 - x0 < 6 or y1 - y0 < 6:
                continue
            box = (x0, y0, x1, y1)
            if any(_iou(box, o["box"]) > MAX_IOU for o in objects):
                continue
            truncated = min(xs) < 0 or min(ys) < 0 or max(xs) > width - 1 or max(ys) > height - 1
            small = min(x1 - x0 + 1, y1 - y0 + 1) < DIFFICULT_MAX_SIDE
            objects.append(
                {"cls": cls, "polys": polys, "box": box, "truncated": truncated, "difficult": small,
                 "pose": POSES[int(rng.integers(len(POSES)))], "colour": style.colour(rng)}
            )  # fmt: skip
            break
    return objects


def _iou(a: tuple, b: tuple) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def _bndbox(parent: ET.Element, box: tuple) -> None:
    """``<bndbox>`` of a 0-based (first x, first y, last x, last y) box, in VOC's 1-based pixels."""
    bb = ET.SubElement(parent, "bndbox")
    x0, y0, x1, y1 = box
    for tag, v in (("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1 + 1), ("ymax", y1 + 1)):
        ET.SubElement(bb, tag).text = str(int(v))


def _parts(obj: ET.Element, box: tuple) -> None:
    """A head (the top third's middle) and a hand (the lower left quarter) inside ``box``, as ``<part>``s."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    for name, part in (("head", (x0 + w // 3, y0, x1 - w // 3, y0 + h // 3)),
                       ("hand", (x0, y0 + h // 2, x0 + w // 4, y0 + 3 * h // 4))):  # fmt: skip
        element = ET.SubElement(obj, "part")
        ET.SubElement(element, "name").text = name
        _bndbox(element, part)


def _annotation_xml(year: str, image_id: str, width: int, height: int, objects: list[dict], quirks: bool
                    ) -> ET.Element:  # fmt: skip
    ann = ET.Element("annotation")
    ET.SubElement(ann, "folder").text = year
    ET.SubElement(ann, "filename").text = f"{image_id}.jpg"
    src = ET.SubElement(ann, "source")
    ET.SubElement(src, "database").text = f"The {year} Database (synthetic, pws-repro)"
    ET.SubElement(src, "annotation").text = f"PASCAL {year}"
    ET.SubElement(src, "image").text = "generated"
    sz = ET.SubElement(ann, "size")
    ET.SubElement(sz, "width").text = str(width)
    ET.SubElement(sz, "height").text = str(height)
    ET.SubElement(sz, "depth").text = "3"
    ET.SubElement(ann, "segmented").text = "0"
    for k, o in enumerate(objects):
        obj = ET.SubElement(ann, "object")
        ET.SubElement(obj, "name").text = VOC_CLASSES[o["cls"]]
        ET.SubElement(obj, "pose").text = o["pose"]
        ET.SubElement(obj, "truncated").text = str(int(o["truncated"]))
        if quirks:
            occluded = any(_iou(o["box"], other["box"]) > 0 for other in objects if other is not o)
            ET.SubElement(obj, "occluded").text = str(int(occluded))
        ET.SubElement(obj, "difficult").text = str(int(o["difficult"]))
        _bndbox(obj, o["box"])
        if quirks and k == 0:
            _parts(obj, o["box"])
    ET.indent(ann, space="\t")
    return ann


def _write_image(year_dir: Path, year: str, image_id: str, rng: np.random.Generator, *, size: tuple[int, int],
                 objects: list[dict], quirks: bool, file_quirk: str | None) -> None:  # fmt: skip
    img = Image.fromarray(background(rng, *size))
    draw = ImageDraw.Draw(img)
    for o in objects:
        draw_object(draw, rng, o["polys"], o["colour"])
    save_image(img, year_dir / "JPEGImages" / f"{image_id}.jpg", file_quirk)
    ET.ElementTree(_annotation_xml(year, image_id, *size, objects, quirks)).write(
        year_dir / "Annotations" / f"{image_id}.xml", encoding="utf-8"
    )


# quirks=True: the file quirk of each split's first image, and the split whose first image has only its
# difficult object
FILE_QUIRKS = {("VOC2007", "trainval"): "greyscale", ("VOC2007", "test"): "cmyk"}
ONLY_DIFFICULT = ("VOC2012", "trainval")


def _write(devkit: Path, num_train: int, num_test: int, seed: int, size: int, object_classes: int,
           quirks: bool, real_sizes: bool) -> None:  # fmt: skip
    n07 = math.ceil(num_train / 2)
    splits = [  # (year, split, image ids)
        ("VOC2007", "trainval", [f"{i:06d}" for i in range(1, n07 + 1)]),
        ("VOC2007", "test", [f"{i:06d}" for i in range(n07 + 1, n07 + num_test + 1)]),
        ("VOC2012", "trainval", [f"2012_{i:06d}" for i in range(1, num_train - n07 + 1)]),
    ]
    for split_code, (year, split, ids) in enumerate(splits):
        year_dir = devkit / year
        for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
            (year_dir / sub).mkdir(parents=True, exist_ok=True)
        for k, image_id in enumerate(ids):
            rng = np.random.default_rng([seed, split_code, k])
            empty = split == "test" and k == len(ids) - 1
            width, height = real_size("voc", k) if real_sizes else (size, size)
            objects = [] if empty else _place_objects(rng, width, height, k == 0, object_classes)
            first = quirks and k == 0
            if first and (year, split) == ONLY_DIFFICULT:
                objects = objects[:1]  # the small one, placed first
            file_quirk = FILE_QUIRKS.get((year, split)) if first else None
            _write_image(year_dir, year, image_id, rng, size=(width, height), objects=objects,
                         quirks=quirks, file_quirk=file_quirk)  # fmt: skip
        main = year_dir / "ImageSets" / "Main"
        lists = {split: ids}
        if split == "trainval":  # VOC's train/val halves of trainval
            lists |= {"train": ids[0::2], "val": ids[1::2]}
        for name, names in lists.items():
            (main / f"{name}.txt").write_text("".join(f"{i}\n" for i in names))


def generate(
    root: str | Path,
    num_train: int,
    num_test: int,
    seed: int = 0,
    *,
    size: int = 320,
    object_classes: int = len(VOC_CLASSES),
    quirks: bool = False,
    real_sizes: bool = False,
) -> Path:
    """Writes the synthetic VOC set under ``root`` and returns the VOCdevkit root (``root/VOCdevkit``).

    ``num_train`` >= 2 images (VOC2007 + VOC2012 trainval), ``num_test`` >= 2 (VOC2007 test, its last image
    without objects); ``quirks``: the real files' quirks (the module); ``real_sizes``: VOC's image sizes
    (:mod:`pws.data.real_sizes`: 500x375, 375x500, ... in turn) instead of ``size`` x ``size``. Same
    arguments, same files; a second call with the same arguments does nothing.
    """
    if num_train < 2 or num_test < 2:
        raise ValueError(
            f"synthetic VOC needs num_train >= 2 (VOC2007 and VOC2012 trainval) and num_test >= 2 (the last "
            f"test image has no object), got num_train={num_train}, num_test={num_test}"
        )
    if size < 64:
        raise ValueError(f"synthetic VOC images must be at least 64 pixels wide, got size={size}")
    if not 1 <= object_classes <= len(VOC_CLASSES):
        raise ValueError(f"object_classes must be 1 to {len(VOC_CLASSES)}, got {object_classes}")
    params = {"generator": "synthetic_voc", "num_train": int(num_train), "num_test": int(num_test),
              "seed": int(seed), "size": int(size), "object_classes": int(object_classes),
              "quirks": bool(quirks), **marker_entry(real_sizes)}  # fmt: skip
    target = Path(root) / "VOCdevkit"
    return build_once(
        target,
        params,
        lambda d: _write(d, int(num_train), int(num_test), int(seed), int(size), int(object_classes),
                         bool(quirks), bool(real_sizes)),
    )  # fmt: skip
