"""Checks of the VOC and COCO layouts before mmdetection reads them: clear errors, not deep stack traces.

* ``require_voc(root)`` / ``require_coco(root)``: the layout is there (else :class:`DataMissingError` naming
  the missing path and how to get the data); they return the layout root to hand to mmdet as ``data_root``.
* ``census_voc(root)`` / ``census_coco(root)``: the images listed (VOC) or there (COCO) counted, for
  :mod:`pws.data.census`;
* ``validate_voc(root)`` / ``validate_coco(ann_file)``: the annotation files are well formed (else
  :class:`AnnotationError`, a ``ValueError`` naming the file, the image and the object or annotation, and
  what is wrong): unparsable XML/JSON, missing fields, boxes with x2 <= x1 or outside the image, unknown
  class names, annotations pointing to unknown image or category ids, duplicate ids. All problems of a file
  are collected (the message shows the first few).

Both accept the real data sets and the project's generated ones (``synthetic_voc``, ``synthetic_coco``);
``synthetic_ok=False`` makes ``require_*`` refuse a generated set, for configs that must run on real data.
"""

from __future__ import annotations

import json
import math
import os
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from pws.data.census import Census
from pws.data.detection._layout import MARKER, is_synthetic
from pws.data.detection.synthetic_voc import VOC_CLASSES
from pws.data.errors import DataMissingError

PathLike = str | os.PathLike[str]

HOW_TO_GET_VOC = (
    "download VOCtrainval_06-Nov-2007.tar, VOCtest_06-Nov-2007.tar and VOCtrainval_11-May-2012.tar from the "
    "PASCAL VOC site (http://host.robots.ox.ac.uk/pascal/VOC/) and extract all three in one folder, which "
    "gives VOCdevkit/VOC2007 (trainval + test) and VOCdevkit/VOC2012 (trainval); give that VOCdevkit folder "
    "(or its parent) as the data root. For the generated smoke-scale set run "
    "`python scripts/prepare_data.py voc --root data/synthetic` (it writes data/synthetic/VOCdevkit)."
)
HOW_TO_GET_COCO = (
    "download train2017.zip, val2017.zip and annotations_trainval2017.zip from https://cocodataset.org "
    "(Dataset > Download) and unzip them into one folder, which gives train2017/, val2017/ and "
    "annotations/instances_{train,val}2017.json; give that folder (or its parent holding coco/) as the data "
    "root. For the generated smoke-scale set run `python scripts/prepare_data.py coco --root data/synthetic` "
    "(it writes data/synthetic/coco)."
)
VOC_SPLITS = {"VOC2007": ("trainval", "test"), "VOC2012": ("trainval",)}
COCO_SPLITS = ("train2017", "val2017")
_SHOW = 10  # problems shown in one message
_TOL = 1.0  # pixels a box may lie outside the image (float rounding in real annotations)


class AnnotationError(ValueError):
    """A malformed annotation file: ``path`` and the list of ``problems`` found in it."""

    def __init__(self, path: PathLike, problems: list[str]) -> None:
        self.path = Path(path)
        self.problems = list(problems)
        shown = "\n  ".join(self.problems[:_SHOW])
        more = f"\n  ... and {len(self.problems) - _SHOW} more" if len(self.problems) > _SHOW else ""
        super().__init__(
            f"malformed annotation file {self.path}: {len(self.problems)} problem(s):\n  {shown}{more}"
        )


# --------------------------------------------------------------------------------------------- require


def _synthetic_refused(what: str, root: Path, how: str) -> DataMissingError:
    return DataMissingError(
        f"{what} (the folder there is a generated smoke-scale set, not the real data)", root, how
    )


def require_voc(
    root: PathLike, *, years: tuple[str, ...] = ("VOC2007", "VOC2012"), synthetic_ok: bool = True
) -> Path:
    """The VOCdevkit root under ``root`` (``root`` itself or ``root/VOCdevkit``), checked to hold ``years``.

    VOC2007 needs ImageSets/Main/trainval.txt and test.txt, VOC2012 trainval.txt, and each year its
    JPEGImages/ and Annotations/. Raises :class:`DataMissingError` naming the first missing path.
    """
    root = Path(root)
    if any((root / y).is_dir() for y in years):
        devkit = root
    elif (root / "VOCdevkit").is_dir():
        devkit = root / "VOCdevkit"
    else:
        looked = root / "VOCdevkit" if root.is_dir() else root
        raise DataMissingError(
            "PASCAL VOC (a VOCdevkit folder with VOC2007 and VOC2012)", looked, HOW_TO_GET_VOC
        )
    for year in years:
        if year not in VOC_SPLITS:
            raise ValueError(f"unknown VOC year {year!r}; expected one of {sorted(VOC_SPLITS)}")
        needed = [devkit / year / "JPEGImages", devkit / year / "Annotations"]
        needed += [devkit / year / "ImageSets" / "Main" / f"{s}.txt" for s in VOC_SPLITS[year]]
        for path in needed:
            if not path.exists():
                raise DataMissingError(f"PASCAL {year} ({path.name} of {year})", path, HOW_TO_GET_VOC)
    if not synthetic_ok and is_synthetic(devkit):
        raise _synthetic_refused("real PASCAL VOC", devkit, HOW_TO_GET_VOC)
    return devkit


def require_coco(root: PathLike, *, splits: tuple[str, ...] = COCO_SPLITS, synthetic_ok: bool = True) -> Path:
    """The COCO 2017 root under ``root`` (``root`` itself or ``root/coco``), checked to hold ``splits``.

    Each split needs its image folder (``train2017/``) and ``annotations/instances_<split>.json``. Raises
    :class:`DataMissingError` naming the first missing path.
    """
    root = Path(root)
    coco = root / "coco" if not (root / "annotations").is_dir() and (root / "coco").is_dir() else root
    if not coco.is_dir():
        raise DataMissingError("COCO 2017 (train2017/, val2017/, annotations/)", coco, HOW_TO_GET_COCO)
    for split in splits:
        for path in (coco / "annotations" / f"instances_{split}.json", coco / split):
            if not path.exists():
                raise DataMissingError(f"COCO 2017 {split} ({path.name})", path, HOW_TO_GET_COCO)
    if not synthetic_ok and is_synthetic(coco):
        raise _synthetic_refused("real COCO 2017", coco, HOW_TO_GET_COCO)
    return coco


# --------------------------------------------------------------------------------------------- census


def _marker(layout_root: Path) -> Path | None:
    return layout_root / MARKER if is_synthetic(layout_root) else None


def census_voc(root: PathLike) -> Census:
    """The image ids listed in VOC2007 trainval/test and VOC2012 trainval (``ImageSets/Main``) counted, and
    the generator's marker if any (:class:`DataMissingError` when the layout is not there)."""
    devkit = require_voc(root)
    counts = {}
    for year, splits in VOC_SPLITS.items():
        for split in splits:
            lines = (devkit / year / "ImageSets" / "Main" / f"{split}.txt").read_text().splitlines()
            counts[f"{year} {split}"] = len({line.split()[0] for line in lines if line.strip()})
    return Census("voc0712", devkit, counts, _marker(devkit))


def census_coco(root: PathLike) -> Census:
    """The image files of train2017/ and val2017/ counted, and the generator's marker if any
    (:class:`DataMissingError` when the layout is not there)."""
    coco = require_coco(root)
    images = (".jpg", ".jpeg", ".png")
    counts = {
        split: sum(1 for entry in os.scandir(coco / split) if entry.name.lower().endswith(images))
        for split in COCO_SPLITS
    }
    return Census("coco", coco, counts, _marker(coco))


# ------------------------------------------------------------------------------------------------ VOC


def _num(text: str | None) -> float | None:
    try:
        v = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _image_size(jpeg: Path) -> tuple[int, int] | None:
    try:
        from PIL import Image

        with Image.open(jpeg) as im:
            return im.size
    except OSError:
        return None


def validate_voc_xml(xml_path: PathLike, jpeg_path: PathLike | None = None) -> list[str]:
    """The problems of one VOC annotation file (empty when it is well formed)."""
    xml_path = Path(xml_path)
    try:
        ann = ET.parse(xml_path).getroot()
    except ET.ParseError as e:
        return [f"unparsable XML: {e}"]
    except OSError as e:
        return [f"cannot read: {e}"]
    if ann.tag != "annotation":
        return [f"root element is <{ann.tag}>, expected <annotation>"]
    problems: list[str] = []
    size = ann.find("size")
    if size is not None:  # mmdet reads int(<width>), int(<height>) when <size> is there
        texts = [(size.findtext(t) or "").strip() for t in ("width", "height")]
        if not all(t.isdigit() and int(t) > 0 for t in texts):
            return [f"<size> has width {texts[0]!r} and height {texts[1]!r}: expected positive integers"]
        width, height = (int(t) for t in texts)
    else:  # without <size>, mmdet reads the image: so do we
        wh = _image_size(Path(jpeg_path)) if jpeg_path is not None else None
        if wh is None:
            return ["no <size> and the image cannot be read to get it"]
        width, height = wh
    for k, obj in enumerate(ann.findall("object")):
        name = (obj.findtext("name") or "").strip()
        where = f"object {k} ({name or 'no name'})"
        if not name:
            problems.append(f"{where}: missing <name>")
        elif name not in VOC_CLASSES:
            problems.append(
                f"{where}: unknown class name {name!r} (VOC's 20 classes: {', '.join(VOC_CLASSES)})"
            )
        for flag in ("difficult", "truncated"):
            text = obj.findtext(flag)
            if text is not None and text.strip() not in ("0", "1"):
                problems.append(f"{where}: <{flag}> is {text!r}, expected 0 or 1")
        box = obj.find("bndbox")
        if box is None:
            problems.append(f"{where}: missing <bndbox>")
            continue
        coords = {t: _num(box.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")}
        bad = [t for t, v in coords.items() if v is None]
        if bad:
            problems.append(f"{where}: <bndbox> lacks a numeric {', '.join(f'<{t}>' for t in bad)}")
            continue
        x1, y1, x2, y2 = (coords[t] for t in ("xmin", "ymin", "xmax", "ymax"))
        shown = f"bndbox (xmin, ymin, xmax, ymax) = ({x1:g}, {y1:g}, {x2:g}, {y2:g})"
        if x2 <= x1 or y2 <= y1:
            problems.append(f"{where}: {shown} has xmax <= xmin or ymax <= ymin")
        elif x1 < 1 - _TOL or y1 < 1 - _TOL or x2 > width + _TOL or y2 > height + _TOL:
            problems.append(
                f"{where}: {shown} lies outside the {width:g}x{height:g} image (VOC boxes are 1-based, "
                f"1 <= xmin < xmax <= width)"
            )
    return problems


def validate_voc(root: PathLike, *, years: tuple[str, ...] | None = None, check_images: bool = True) -> Path:
    """Parses every annotation listed in the ImageSets of a VOCdevkit; returns the VOCdevkit root.

    ``years`` defaults to those present. Raises :class:`AnnotationError` (a ``ValueError``) naming the first
    malformed XML file with its problems, or the ImageSets list naming ids whose XML (or JPEG, when
    ``check_images``) is absent; :class:`DataMissingError` when the layout itself is missing.
    """
    root = Path(root)
    if years is None:
        base = (
            root / "VOCdevkit" if (root / "VOCdevkit").is_dir() and not (root / "VOC2007").is_dir() else root
        )
        years = tuple(y for y in VOC_SPLITS if (base / y).is_dir()) or ("VOC2007", "VOC2012")
    devkit = require_voc(root, years=years)
    for year in years:
        year_dir = devkit / year
        listed: dict[str, Path] = {}
        for split in VOC_SPLITS[year]:
            set_file = year_dir / "ImageSets" / "Main" / f"{split}.txt"
            for line_no, line in enumerate(set_file.read_text().splitlines(), 1):
                fields = line.split()
                if fields:
                    listed.setdefault(fields[0], set_file)
                if len(fields) > 1 and fields[1] not in ("-1", "0", "1"):
                    raise AnnotationError(set_file, [f"line {line_no}: {line!r} is not an image id"])
        missing: dict[Path, list[str]] = {}
        for image_id, set_file in listed.items():
            xml_path = year_dir / "Annotations" / f"{image_id}.xml"
            jpeg_path = year_dir / "JPEGImages" / f"{image_id}.jpg"
            if not xml_path.is_file():
                missing.setdefault(set_file, []).append(f"image {image_id}: {xml_path} does not exist")
                continue
            if check_images and not jpeg_path.is_file():
                missing.setdefault(set_file, []).append(f"image {image_id}: {jpeg_path} does not exist")
            problems = validate_voc_xml(xml_path, jpeg_path)
            if problems:
                raise AnnotationError(xml_path, [f"image {image_id}: {p}" for p in problems])
        if missing:
            set_file, problems = next(iter(missing.items()))
            raise AnnotationError(set_file, problems)
    return devkit


# ----------------------------------------------------------------------------------------------- COCO


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_segmentation(seg: Any, image: dict | None) -> list[str]:
    if isinstance(seg, list):
        out = []
        for j, poly in enumerate(seg):
            if not isinstance(poly, list) or not all(_is_num(c) for c in poly):
                out.append(f"segmentation polygon {j} is not a list of numbers")
            elif len(poly) % 2:
                out.append(f"segmentation polygon {j} has an odd number ({len(poly)}) of coordinates")
        return out
    if isinstance(seg, dict):
        counts, size = seg.get("counts"), seg.get("size")
        if not isinstance(counts, (list, str)) or not (isinstance(size, list) and len(size) == 2):
            return ["RLE segmentation needs 'counts' (list or string) and 'size' [height, width]"]
        if image is not None and list(size) != [image.get("height"), image.get("width")]:
            return [f"RLE size {size} differs from the image's [height, width] "
                    f"[{image.get('height')}, {image.get('width')}]"]  # fmt: skip
        if isinstance(counts, list) and sum(counts) != size[0] * size[1]:
            return [f"RLE counts sum to {sum(counts)}, not height*width = {size[0] * size[1]}"]
        return []
    return [f"segmentation is a {type(seg).__name__}, expected polygons (list) or RLE (dict)"]


def validate_coco(
    ann_file: PathLike, *, image_dir: PathLike | None = None, strict: bool = True
) -> dict[str, int]:
    """Checks a COCO instances json; returns counts ``{"images", "annotations", "categories"}``.

    Problems raised as :class:`AnnotationError` (a ``ValueError`` naming the file, the annotation id and its
    image id): unparsable JSON; missing ``images``/``annotations``/``categories`` or required keys (image:
    id, file_name, width, height; annotation: id, image_id, category_id, bbox, area); duplicate ids;
    annotations pointing to an unknown image or category id; a bbox that is not 4 finite numbers, has
    w <= 0 or h <= 0 (x2 <= x1), or lies outside its image; malformed segmentations. With ``image_dir``,
    every image file must exist there.

    Real COCO train2017 has two annotations with zero height (mmdet drops them when loading):
    ``strict=False`` turns zero-width/height boxes into a warning instead of an error.
    """
    ann_file = Path(ann_file)
    if not ann_file.is_file():
        raise DataMissingError("COCO annotation file", ann_file, HOW_TO_GET_COCO)
    try:
        with ann_file.open("rb") as f:
            doc = json.load(f)
    except json.JSONDecodeError as e:
        raise AnnotationError(ann_file, [f"unparsable JSON: {e}"]) from None
    except UnicodeDecodeError as e:
        raise AnnotationError(ann_file, [f"not UTF-8 text: {e}"]) from None
    if not isinstance(doc, dict):
        raise AnnotationError(ann_file, [f"top level is a {type(doc).__name__}, expected an object"])
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(doc.get(k), list)]
    if missing:
        raise AnnotationError(ann_file, [f"missing top-level list(s): {', '.join(missing)}"])

    problems: list[str] = []
    categories: set[Any] = set()
    for k, cat in enumerate(doc["categories"]):
        if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
            problems.append(f"category {k}: needs 'id' and 'name'")
        elif cat["id"] in categories:
            problems.append(f"category id {cat['id']}: duplicate id")
        else:
            categories.add(cat["id"])
    images: dict[Any, dict] = {}
    for k, img in enumerate(doc["images"]):
        keys = [
            key
            for key in ("id", "file_name", "width", "height")
            if not isinstance(img, dict) or key not in img
        ]
        if keys:
            problems.append(f"image {k}: missing key(s) {', '.join(keys)}")
            continue
        where = f"image id {img['id']} ({img['file_name']})"
        if img["id"] in images:
            problems.append(f"{where}: duplicate image id")
        elif not (
            _is_num(img["width"]) and _is_num(img["height"]) and img["width"] > 0 and img["height"] > 0
        ):
            problems.append(
                f"{where}: width/height {img['width']!r}x{img['height']!r} are not positive numbers"
            )
        else:
            images[img["id"]] = img
            if image_dir is not None and not (Path(image_dir) / img["file_name"]).is_file():
                problems.append(f"{where}: image file {Path(image_dir) / img['file_name']} does not exist")

    ann_ids: set[Any] = set()
    degenerate: list[str] = []
    for k, ann in enumerate(doc["annotations"]):
        if not isinstance(ann, dict):
            problems.append(f"annotation {k}: not an object")
            continue
        where = f"annotation id {ann.get('id', f'? (index {k})')} (image id {ann.get('image_id', '?')})"
        keys = [key for key in ("id", "image_id", "category_id", "bbox", "area") if key not in ann]
        if keys:
            problems.append(f"{where}: missing key(s) {', '.join(keys)}")
            continue
        if ann["id"] in ann_ids:
            problems.append(f"{where}: duplicate annotation id")
        ann_ids.add(ann["id"])
        image = images.get(ann["image_id"])
        if image is None:
            problems.append(f"{where}: image_id {ann['image_id']!r} is not among the file's images")
        if ann["category_id"] not in categories:
            problems.append(f"{where}: category_id {ann['category_id']!r} is not among the file's categories")
        if not _is_num(ann["area"]) or ann["area"] < 0:
            problems.append(f"{where}: area {ann['area']!r} is not a number >= 0")
        crowd = ann.get("iscrowd", 0)
        if crowd not in (0, 1):
            problems.append(f"{where}: iscrowd {crowd!r} is not 0 or 1")
        bbox = ann["bbox"]
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_num(v) for v in bbox)):
            problems.append(f"{where}: bbox {bbox!r} is not [x, y, w, h] with 4 finite numbers")
        else:
            x, y, w, h = bbox
            if w < 0 or h < 0:
                problems.append(
                    f"{where}: bbox [x, y, w, h] = {bbox} has a negative size (x2 < x1 or y2 < y1)"
                )
            elif w == 0 or h == 0:
                msg = f"{where}: bbox [x, y, w, h] = {bbox} has zero width or height (x2 <= x1 or y2 <= y1)"
                (problems if strict else degenerate).append(msg)
            elif image is not None and (
                x < -_TOL or y < -_TOL or x + w > image["width"] + _TOL or y + h > image["height"] + _TOL
            ):
                size = f"{image['width']}x{image['height']}"
                problems.append(f"{where}: bbox [x, y, w, h] = {bbox} lies outside the {size} image")
        if "segmentation" in ann:
            problems += [f"{where}: {p}" for p in _check_segmentation(ann["segmentation"], image)]
    if problems:
        if strict and any("zero width or height" in p for p in problems):
            problems.append(
                "(strict=False lets zero-width/height boxes through with a warning; mmdet drops them)"
            )
        raise AnnotationError(ann_file, problems)
    if degenerate:
        warnings.warn(
            f"{ann_file}: {len(degenerate)} annotation(s) with a zero-width/height bbox (mmdet drops them): "
            + "; ".join(degenerate[:_SHOW]),
            stacklevel=2,
        )
    return {"images": len(images), "annotations": len(ann_ids), "categories": len(categories)}


def validate_coco_root(root: PathLike, *, splits: tuple[str, ...] = COCO_SPLITS, strict: bool = True) -> Path:
    """``require_coco``, then ``validate_coco`` of each split (json and images); returns the COCO root."""
    coco = require_coco(root, splits=splits)
    for split in splits:
        validate_coco(coco / "annotations" / f"instances_{split}.json", image_dir=coco / split, strict=strict)
    return coco
