"""Missing data: DataMissingError with the path. Malformed annotations: a ValueError naming the file."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pws.data import DataMissingError
from pws.data.detection import (
    AnnotationError,
    require_coco,
    require_voc,
    validate_coco,
    validate_coco_root,
    validate_voc,
)

# ------------------------------------------------------------------------------------------ missing data


def test_data_missing_error_message() -> None:
    err = DataMissingError("PASCAL VOC", "/nowhere/VOCdevkit", "download it")
    assert isinstance(err, FileNotFoundError)
    assert str(err) == "PASCAL VOC not found at /nowhere/VOCdevkit. How to get it: download it"
    assert err.filename == "/nowhere/VOCdevkit" and err.path == Path("/nowhere/VOCdevkit")


def test_require_voc_missing_root(tmp_path: Path) -> None:
    root = tmp_path / "nowhere"
    with pytest.raises(DataMissingError) as e:
        require_voc(root)
    msg = str(e.value)
    assert str(root) in msg and "VOC2007" in msg and "VOC2012" in msg and "prepare_data.py voc" in msg
    with pytest.raises(
        DataMissingError, match=re.escape(str(tmp_path / "VOCdevkit"))
    ):  # existing root, no VOCdevkit
        require_voc(tmp_path)


def test_require_voc_missing_year(voc_devkit: Path, tmp_path: Path) -> None:
    devkit = shutil.copytree(voc_devkit, tmp_path / "VOCdevkit")
    shutil.rmtree(devkit / "VOC2012")
    with pytest.raises(DataMissingError, match=re.escape(str(devkit / "VOC2012"))):
        require_voc(devkit)
    assert require_voc(devkit, years=("VOC2007",)) == devkit  # a test-only run needs VOC2007 alone
    (devkit / "VOC2007" / "ImageSets" / "Main" / "test.txt").unlink()
    with pytest.raises(DataMissingError, match=r"test\.txt"):
        require_voc(tmp_path, years=("VOC2007",))


def test_require_voc_finds_the_devkit(voc_devkit: Path) -> None:
    assert require_voc(voc_devkit) == voc_devkit
    assert require_voc(voc_devkit.parent) == voc_devkit  # the parent of VOCdevkit works too
    with pytest.raises(DataMissingError, match="generated smoke-scale set"):
        require_voc(voc_devkit, synthetic_ok=False)


def test_require_coco(coco_root: Path, tmp_path: Path) -> None:
    assert require_coco(coco_root) == coco_root
    assert require_coco(coco_root.parent) == coco_root
    with pytest.raises(DataMissingError, match="generated smoke-scale set"):
        require_coco(coco_root, synthetic_ok=False)
    with pytest.raises(DataMissingError) as e:
        require_coco(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(e.value) and "cocodataset.org" in str(e.value)
    root = shutil.copytree(coco_root, tmp_path / "coco")
    (root / "annotations" / "instances_val2017.json").unlink()
    with pytest.raises(
        DataMissingError, match=re.escape(str(root / "annotations" / "instances_val2017.json"))
    ):
        require_coco(root)
    with pytest.raises(DataMissingError, match=r"instances_val2017\.json"):
        validate_coco(root / "annotations" / "instances_val2017.json")


# ------------------------------------------------------------------------------------------ malformed VOC


def _first_object_xml(devkit: Path) -> tuple[str, Path]:
    """An image of VOC2007 trainval with objects, and its XML file."""
    for image_id in (devkit / "VOC2007" / "ImageSets" / "Main" / "trainval.txt").read_text().split():
        path = devkit / "VOC2007" / "Annotations" / f"{image_id}.xml"
        if ET.parse(path).getroot().find("object") is not None:
            return image_id, path
    raise AssertionError("no image with objects")


def _edit_first_box(path: Path, **coords: str) -> None:
    tree = ET.parse(path)
    box = tree.getroot().find("object/bndbox")
    for tag, value in coords.items():
        box.find(tag).text = value
    tree.write(path)


def _remove(path: Path, parent: str, child: str) -> None:
    tree = ET.parse(path)
    node = tree.getroot().find(parent)
    node.remove(node.find(child))
    tree.write(path)


def _rename_first(path: Path, name: str) -> None:
    tree = ET.parse(path)
    tree.getroot().find("object/name").text = name
    tree.write(path)


VOC_CASES = {
    "unparsable": (lambda p: p.write_text(p.read_text()[:-40]), "unparsable XML"),
    "no_bndbox": (lambda p: _remove(p, "object", "bndbox"), "missing <bndbox>"),
    "no_xmax": (lambda p: _remove(p, "object/bndbox", "xmax"), "lacks a numeric <xmax>"),
    "text_ymin": (lambda p: _edit_first_box(p, ymin="n/a"), "lacks a numeric <ymin>"),
    "x2_le_x1": (lambda p: _edit_first_box(p, xmin="50", xmax="50"), "xmax <= xmin"),
    "y2_lt_y1": (lambda p: _edit_first_box(p, ymin="90", ymax="40"), "ymax <= ymin"),
    "outside": (lambda p: _edit_first_box(p, xmin="10", xmax="400"), "outside the 320x320 image"),
    "negative": (lambda p: _edit_first_box(p, ymin="-30", ymax="40"), "outside"),
    "float_width": (lambda p: p.write_text(p.read_text().replace("<width>320<", "<width>320.5<")), "<size>"),
    "unknown_class": (lambda p: _rename_first(p, "giraffe"), "unknown class name 'giraffe'"),
    "bad_difficult": (lambda p: p.write_text(p.read_text().replace("<difficult>0", "<difficult>maybe", 1)
                                             .replace("<difficult>1", "<difficult>maybe", 1)), "<difficult>"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(VOC_CASES))
def test_validate_voc_names_the_malformed_file(voc_devkit: Path, tmp_path: Path, case: str) -> None:
    devkit = shutil.copytree(voc_devkit, tmp_path / "VOCdevkit")
    image_id, xml = _first_object_xml(devkit)
    edit, expected = VOC_CASES[case]
    edit(xml)
    with pytest.raises(ValueError) as e:
        validate_voc(devkit)
    assert isinstance(e.value, AnnotationError) and e.value.path == xml
    msg = str(e.value)
    assert str(xml) in msg and f"image {image_id}" in msg and expected in msg


def test_validate_voc_missing_listed_xml(voc_devkit: Path, tmp_path: Path) -> None:
    devkit = shutil.copytree(voc_devkit, tmp_path / "VOCdevkit")
    image_id = (devkit / "VOC2012" / "ImageSets" / "Main" / "trainval.txt").read_text().split()[0]
    xml = devkit / "VOC2012" / "Annotations" / f"{image_id}.xml"
    xml.unlink()
    with pytest.raises(ValueError) as e:
        validate_voc(devkit)
    assert str(xml) in str(e.value) and "trainval.txt" in str(e.value)


def test_validate_voc_accepts_the_generated_set(voc_devkit: Path) -> None:
    assert validate_voc(voc_devkit) == voc_devkit
    assert validate_voc(voc_devkit.parent, years=("VOC2007",)) == voc_devkit


# ----------------------------------------------------------------------------------------- malformed COCO


def _doc(coco_root: Path) -> dict:
    return json.loads((coco_root / "annotations" / "instances_val2017.json").read_text())


def _first_ann(doc: dict) -> dict:
    return next(a for a in doc["annotations"] if not a["iscrowd"])


def _set(key: str, value):
    def edit(doc: dict) -> str:
        ann = _first_ann(doc)
        ann[key] = value
        return f"annotation id {ann['id']} (image id {ann['image_id']})"

    return edit


def _drop(key: str):
    def edit(doc: dict) -> str:
        ann = _first_ann(doc)
        del ann[key]
        return f"annotation id {ann['id']}"

    return edit


def _duplicate_id(doc: dict) -> str:
    a, b = doc["annotations"][:2]
    b["id"] = a["id"]
    return f"annotation id {a['id']}"


COCO_CASES = {
    "no_bbox": (_drop("bbox"), "missing key(s) bbox"),
    "no_category": (_drop("category_id"), "missing key(s) category_id"),
    "zero_width": (_set("bbox", [10.0, 10.0, 0.0, 5.0]), "zero width or height"),
    "negative_height": (_set("bbox", [10.0, 10.0, 5.0, -3.0]), "negative size"),
    "outside": (_set("bbox", [300.0, 10.0, 100.0, 20.0]), "outside the"),
    "short_bbox": (_set("bbox", [1, 2, 3]), "not [x, y, w, h]"),
    "nan_bbox": (_set("bbox", [1, 2, float("nan"), 4]), "not [x, y, w, h]"),
    "unknown_image": (_set("image_id", 987654321), "image_id 987654321 is not among the file's images"),
    "unknown_category": (_set("category_id", 12), "category_id 12 is not among"),
    "odd_polygon": (_set("segmentation", [[1.0, 2.0, 3.0, 4.0, 5.0]]), "odd number"),
    "duplicate_id": (_duplicate_id, "duplicate annotation id"),
}


@pytest.mark.parametrize("case", sorted(COCO_CASES))
def test_validate_coco_names_file_and_annotation(coco_root: Path, tmp_path: Path, case: str) -> None:
    doc = _doc(coco_root)
    edit, expected = COCO_CASES[case]
    where = edit(doc)
    path = tmp_path / "instances_val2017.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError) as e:
        validate_coco(path)
    assert isinstance(e.value, AnnotationError) and e.value.path == path
    msg = str(e.value)
    assert str(path) in msg and where in msg and expected in msg


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{", "unparsable JSON"),
        ("[]", "top level is a list"),
        ('{"images": [], "categories": []}', "annotations"),
    ],
)
def test_validate_coco_unparsable_or_incomplete(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "instances_train2017.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=expected) as e:
        validate_coco(path)
    assert str(path) in str(e.value)


def test_validate_coco_missing_image_file(coco_root: Path, tmp_path: Path) -> None:
    root = shutil.copytree(coco_root, tmp_path / "coco")
    img = json.loads((root / "annotations" / "instances_train2017.json").read_text())["images"][1]
    (root / "train2017" / img["file_name"]).unlink()
    with pytest.raises(ValueError, match=img["file_name"]):
        validate_coco_root(root)


def test_validate_coco_zero_size_boxes_allowed_when_not_strict(coco_root: Path, tmp_path: Path) -> None:
    """Real COCO train2017 has two zero-height boxes (mmdet drops them): strict=False only warns."""
    doc = _doc(coco_root)
    _set("bbox", [10.0, 10.0, 4.0, 0.0])(doc)
    path = tmp_path / "instances_val2017.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="strict=False"):
        validate_coco(path)
    with pytest.warns(UserWarning, match="zero-width/height"):
        counts = validate_coco(path, strict=False)
    assert counts["annotations"] == len(doc["annotations"])


def test_validate_coco_accepts_the_generated_set(coco_root: Path) -> None:
    for split in ("train2017", "val2017"):
        counts = validate_coco(
            coco_root / "annotations" / f"instances_{split}.json", image_dir=coco_root / split
        )
        assert counts["categories"] == 80 and counts["images"] >= 2
