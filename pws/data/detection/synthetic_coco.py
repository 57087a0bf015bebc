"""A small COCO 2017 set in the real layout, generated: the smoke-scale stand-in for COCO.

``generate(root, num_train, num_val, seed)`` writes ``root/coco`` as the official archives unpack::

    coco/
      train2017/*.jpg   val2017/*.jpg
      annotations/instances_train2017.json   annotations/instances_val2017.json

The json files have COCO's shape (info, licenses, images, annotations, categories) with the 80 categories
under their real, non-contiguous ids (1..90), names and supercategories. Images (a few sizes up to
320 x 320, named by their 12-digit ids like COCO's; ids are not contiguous either) hold 1 to 3 large objects
of the first ``object_classes`` categories (all 80 by default; the smoke scale uses fewer), each category a
shape and a colour group on a textured background (``_render``). Every annotation has a polygon segmentation
(the drawn polygon, flattened ``[x1, y1, x2, y2, ...]``; the "split" shape has two polygons), its area
(polygon area), ``bbox = [x, y, w, h]`` (the polygon's extent) and ``iscrowd = 0``. The first image of
each split also has a crowd: a cluster of small "person" shapes annotated once with ``iscrowd = 1`` and an
uncompressed RLE segmentation (``{"counts": [...], "size": [h, w]}``, column-major, as COCO's crowd
annotations), its area the mask's pixel count. The last val image has no annotation.

``real_sizes=True`` writes COCO's image sizes instead (:mod:`pws.data.real_sizes`: 640x480, 480x640, 640x427,
427x640 in turn, both orientations in every split of two images or more), for a rehearsal at full size.

``quirks=True`` makes sure of what the real set has beyond that at any size: the first object of each
split's first image is in two parts (two polygons, whatever its category's shape) and the last train image
has no annotation either.

pycocotools loads it and COCOeval runs on it. Deterministic for a seed; calling it again with the same
arguments returns at once (see ``_layout``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pws.data.detection._layout import build_once
from pws.data.detection._render import (
    background,
    class_style,
    draw_object,
    polygon_area,
    shape_polygons,
)
from pws.data.quirks import save_image
from pws.data.real_sizes import marker_entry, real_size

# (id, name, supercategory): COCO 2017's 80 categories under their real ids.
COCO_CATEGORIES = (
    (1, "person", "person"), (2, "bicycle", "vehicle"), (3, "car", "vehicle"), (4, "motorcycle", "vehicle"),
    (5, "airplane", "vehicle"), (6, "bus", "vehicle"), (7, "train", "vehicle"), (8, "truck", "vehicle"),
    (9, "boat", "vehicle"), (10, "traffic light", "outdoor"), (11, "fire hydrant", "outdoor"),
    (13, "stop sign", "outdoor"), (14, "parking meter", "outdoor"), (15, "bench", "outdoor"),
    (16, "bird", "animal"), (17, "cat", "animal"), (18, "dog", "animal"), (19, "horse", "animal"),
    (20, "sheep", "animal"), (21, "cow", "animal"), (22, "elephant", "animal"), (23, "bear", "animal"),
    (24, "zebra", "animal"), (25, "giraffe", "animal"), (27, "backpack", "accessory"),
    (28, "umbrella", "accessory"), (31, "handbag", "accessory"), (32, "tie", "accessory"),
    (33, "suitcase", "accessory"), (34, "frisbee", "sports"), (35, "skis", "sports"),
    (36, "snowboard", "sports"), (37, "sports ball", "sports"), (38, "kite", "sports"),
    (39, "baseball bat", "sports"), (40, "baseball glove", "sports"), (41, "skateboard", "sports"),
    (42, "surfboard", "sports"), (43, "tennis racket", "sports"), (44, "bottle", "kitchen"),
    (46, "wine glass", "kitchen"), (47, "cup", "kitchen"), (48, "fork", "kitchen"), (49, "knife", "kitchen"),
    (50, "spoon", "kitchen"), (51, "bowl", "kitchen"), (52, "banana", "food"), (53, "apple", "food"),
    (54, "sandwich", "food"), (55, "orange", "food"), (56, "broccoli", "food"), (57, "carrot", "food"),
    (58, "hot dog", "food"), (59, "pizza", "food"), (60, "donut", "food"), (61, "cake", "food"),
    (62, "chair", "furniture"), (63, "couch", "furniture"), (64, "potted plant", "furniture"),
    (65, "bed", "furniture"), (67, "dining table", "furniture"), (70, "toilet", "furniture"),
    (72, "tv", "electronic"), (73, "laptop", "electronic"), (74, "mouse", "electronic"),
    (75, "remote", "electronic"), (76, "keyboard", "electronic"), (77, "cell phone", "electronic"),
    (78, "microwave", "appliance"), (79, "oven", "appliance"), (80, "toaster", "appliance"),
    (81, "sink", "appliance"), (82, "refrigerator", "appliance"), (84, "book", "indoor"),
    (85, "clock", "indoor"), (86, "vase", "indoor"), (87, "scissors", "indoor"), (88, "teddy bear", "indoor"),
    (89, "hair drier", "indoor"), (90, "toothbrush", "indoor"),
)  # fmt: skip
COCO_CLASSES = tuple(name for _, name, _ in COCO_CATEGORIES)
IMAGE_SIZES = ((320, 320), (320, 256), (256, 320))  # (width, height)
_SPLITS = {"train2017": (1, 100_000), "val2017": (2, 500_000)}  # split code, first image id
_ANN_ID_START = {"train2017": 1, "val2017": 10_000_001}
# Few, large objects of a few categories, so that a small Mask R-CNN learns them in minutes: 1 to
# MAX_OBJECTS per image, sides a fraction SIDE_RANGE of the image's shorter side, covering at most
# MAX_OVERLAP of a smaller one; drawn from the first object_classes categories (the json lists all 80).
MAX_OBJECTS = 3
SIDE_RANGE = (0.25, 0.6)
MAX_OVERLAP = 0.1


def rle_encode(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE of a binary (h, w) mask: column-major run lengths starting with zeros."""
    flat = np.asarray(mask, dtype=np.uint8).flatten(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        counts = [0, *counts]
    return {"counts": [int(c) for c in counts], "size": [int(mask.shape[0]), int(mask.shape[1])]}


def _box(polys: list) -> list[float]:
    xs = [x for p in polys for x, _ in p]
    ys = [y for p in polys for _, y in p]
    return [min(xs), min(ys), max(xs), max(ys)]


def _overlap(a: list[float], b: list[float]) -> float:
    """Intersection over the smaller box (so that objects rarely hide each other)."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / max(smaller, 1e-6)


def _image(rng: np.random.Generator, width: int, height: int, crowd: bool, empty: bool, object_classes: int,
           two_parts: bool = False):  # fmt: skip
    """Draws one image; returns it and its annotations (without ids). ``two_parts``: its first object is
    drawn as the "split" shape (two polygons)."""
    img = Image.fromarray(background(rng, width, height))
    draw = ImageDraw.Draw(img)
    anns: list[dict] = []
    taken: list[list[float]] = []
    if crowd:  # a cluster of small persons, annotated once as a crowd region
        cw, ch = float(rng.uniform(70, 100)), float(rng.uniform(50, 70))
        x0, y0 = float(rng.uniform(0, width - cw)), float(rng.uniform(0, height - ch))
        mask_img = Image.new("L", (width, height), 0)
        mask_draw = ImageDraw.Draw(mask_img)
        style = class_style(0, object_classes)
        for _ in range(int(rng.integers(6, 11))):
            s = float(rng.uniform(10, 18))
            cx, cy = float(rng.uniform(x0 + s / 2, x0 + cw - s / 2)), float(rng.uniform(y0 + s, y0 + ch - s))
            polys = shape_polygons(style.shape, cx, cy, s, 2 * s)
            draw_object(draw, rng, polys, style.colour(rng))
            for p in polys:
                mask_draw.polygon(p, fill=1, outline=1)
        mask = np.asarray(mask_img, dtype=np.uint8)
        ys, xs = np.nonzero(mask)
        bx0, by0, bx1, by1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
        anns.append({"segmentation": rle_encode(mask), "area": int(mask.sum()), "iscrowd": 1,
                     "bbox": [bx0, by0, bx1 - bx0, by1 - by0], "category_id": 1})  # fmt: skip
        taken.append([bx0, by0, bx1, by1])
    if empty:
        return img, anns
    for _ in range(int(rng.integers(1, MAX_OBJECTS + 1))):
        for _ in range(30):
            k = int(rng.integers(object_classes))
            w = float(rng.uniform(*SIDE_RANGE) * min(width, height))
            h = float(np.clip(w * np.exp(rng.uniform(-0.4, 0.4)), 16.0, 0.7 * height))
            cx, cy = (
                float(rng.uniform(w / 2 + 1, width - w / 2 - 1)),
                float(rng.uniform(h / 2 + 1, height - h / 2 - 1)),
            )
            style = class_style(k, object_classes)
            shape = "split" if two_parts and all(a["iscrowd"] for a in anns) else style.shape
            polys = [[(round(x, 2), round(y, 2)) for x, y in p] for p in shape_polygons(shape, cx, cy, w, h)]
            box = _box(polys)
            if any(_overlap(box, t) > MAX_OVERLAP for t in taken):
                continue
            draw_object(draw, rng, polys, style.colour(rng))
            taken.append(box)
            anns.append({
                "segmentation": [[c for xy in p for c in xy] for p in polys],
                "area": round(sum(polygon_area(p) for p in polys), 2),
                "iscrowd": 0,
                "bbox": [box[0], box[1], round(box[2] - box[0], 2), round(box[3] - box[1], 2)],
                "category_id": COCO_CATEGORIES[k][0],
            })  # fmt: skip
            break
    return img, anns


def _write(coco_root: Path, counts: dict[str, int], seed: int, object_classes: int, quirks: bool,
           real_sizes: bool) -> None:  # fmt: skip
    (coco_root / "annotations").mkdir(parents=True)
    categories = [{"supercategory": sup, "id": cid, "name": name} for cid, name, sup in COCO_CATEGORIES]
    for split, n in counts.items():
        code, first_id = _SPLITS[split]
        (coco_root / split).mkdir()
        images, annotations = [], []
        ann_id = _ANN_ID_START[split]
        for k in range(n):
            rng = np.random.default_rng([seed, code, k])
            image_id = first_id + 7 * k + int(rng.integers(0, 7))  # increasing, not contiguous
            width, height = IMAGE_SIZES[int(rng.integers(len(IMAGE_SIZES)))]
            if real_sizes:
                width, height = real_size("coco", k)
            empty = (split == "val2017" or quirks) and k == n - 1
            img, anns = _image(rng, width, height, crowd=k == 0, empty=empty, object_classes=object_classes,
                               two_parts=quirks and k == 0)  # fmt: skip
            file_name = f"{image_id:012d}.jpg"
            save_image(img, coco_root / split / file_name)
            images.append({"license": 1, "file_name": file_name, "coco_url": "", "height": height,
                           "width": width, "date_captured": "2017-01-01 00:00:00", "flickr_url": "",
                           "id": image_id})  # fmt: skip
            for a in anns:
                annotations.append({**a, "image_id": image_id, "id": ann_id})
                ann_id += 1
        doc = {
            "info": {"description": "Synthetic COCO 2017 layout (pws-repro smoke scale)", "url": "",
                     "version": "1.0", "year": 2017, "contributor": "pws-repro",
                     "date_created": "2017/01/01"},
            "licenses": [{"url": "", "id": 1, "name": "generated image, no restriction"}],
            "images": images,
            "annotations": annotations,
            "categories": categories,
        }  # fmt: skip
        (coco_root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))


def generate(
    root: str | Path,
    num_train: int,
    num_val: int,
    seed: int = 0,
    *,
    object_classes: int = len(COCO_CATEGORIES),
    quirks: bool = False,
    real_sizes: bool = False,
) -> Path:
    """Writes the synthetic COCO set under ``root`` and returns its root (``root/coco``).

    ``num_train`` >= 1 images in train2017 (>= 2 with ``quirks``: the module), ``num_val`` >= 2 in val2017
    (the last without annotations); ``real_sizes``: COCO's image sizes (the module). Same arguments, same
    files; a second call with the same arguments does nothing.
    """
    if num_train < 1 + int(quirks) or num_val < 2:
        raise ValueError(
            f"synthetic COCO needs num_train >= 1 (2 with quirks: the last has no annotation) and num_val "
            f">= 2 (the last val image has no annotation), got num_train={num_train}, num_val={num_val}"
        )
    if not 1 <= object_classes <= len(COCO_CATEGORIES):
        raise ValueError(f"object_classes must be 1 to {len(COCO_CATEGORIES)}, got {object_classes}")
    params = {"generator": "synthetic_coco", "num_train": int(num_train), "num_val": int(num_val),
              "seed": int(seed), "object_classes": int(object_classes), "quirks": bool(quirks),
              **marker_entry(real_sizes)}  # fmt: skip
    counts = {"train2017": int(num_train), "val2017": int(num_val)}
    return build_once(
        Path(root) / "coco",
        params,
        lambda d: _write(d, counts, int(seed), int(object_classes), bool(quirks), bool(real_sizes)),
    )
