"""The generated COCO set: real COCO 2017 layout and json, crowd RLE, an empty image, COCOeval on it."""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from detection_stack import require_detection_stack
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from pws.data.detection import COCO_CATEGORIES, is_synthetic, synthetic_coco, validate_coco_root
from pws.data.detection.synthetic_coco import rle_encode

SPLITS = ("train2017", "val2017")
# pycocotools 2.0.11 under numpy 2 warns inside mask.decode; not ours
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _api(coco_root: Path, split: str) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(coco_root / "annotations" / f"instances_{split}.json"))


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_counts_and_categories(coco_root: Path, coco_args: dict) -> None:
    assert coco_root.name == "coco" and is_synthetic(coco_root)
    counts = {"train2017": coco_args["num_train"], "val2017": coco_args["num_val"]}
    for split in SPLITS:
        api = _api(coco_root, split)
        assert len(api.getImgIds()) == counts[split]
        assert len(list((coco_root / split).glob("*.jpg"))) == counts[split]
        cats = api.loadCats(api.getCatIds())
        assert [(c["id"], c["name"], c["supercategory"]) for c in cats] == list(COCO_CATEGORIES)
        assert len(cats) == 80 and max(c["id"] for c in cats) == 90  # real, non-contiguous ids
        doc = json.loads((coco_root / "annotations" / f"instances_{split}.json").read_text())
        assert {"info", "licenses", "images", "annotations", "categories"} <= doc.keys()
    ids = [set(_api(coco_root, s).getImgIds()) for s in SPLITS]
    assert not ids[0] & ids[1]
    validate_coco_root(coco_root)


def test_images_and_annotations(coco_root: Path) -> None:
    for split in SPLITS:
        api = _api(coco_root, split)
        for img in api.loadImgs(api.getImgIds()):
            assert img["file_name"] == f"{img['id']:012d}.jpg"
            with Image.open(coco_root / split / img["file_name"]) as im:
                assert im.format == "JPEG" and im.size == (img["width"], img["height"])
            for ann in api.loadAnns(api.getAnnIds(imgIds=img["id"])):
                x, y, w, h = ann["bbox"]
                assert w > 0 and h > 0 and x >= 0 and y >= 0
                assert x + w <= img["width"] and y + h <= img["height"]
                assert ann["area"] > 0
                mask = api.annToMask(ann)
                if ann["iscrowd"]:
                    continue
                polys = ann["segmentation"]
                assert isinstance(polys, list) and all(len(p) >= 6 and len(p) % 2 == 0 for p in polys)
                xs = [v for p in polys for v in p[0::2]]
                ys = [v for p in polys for v in p[1::2]]
                assert [min(xs), min(ys)] == pytest.approx([x, y]) and max(xs) == pytest.approx(
                    x + w, abs=0.02
                )
                assert mask.sum() == pytest.approx(ann["area"], rel=0.25)  # raster vs polygon area


def test_crowd_annotation_is_rle(coco_root: Path) -> None:
    for split in SPLITS:
        api = _api(coco_root, split)
        crowds = api.loadAnns(api.getAnnIds(iscrowd=True))
        crowds = [a for a in crowds if a["iscrowd"] == 1]
        assert crowds, split
        for ann in crowds:
            img = api.loadImgs(ann["image_id"])[0]
            rle = ann["segmentation"]
            assert isinstance(rle["counts"], list) and rle["size"] == [img["height"], img["width"]]
            mask = api.annToMask(ann)
            assert int(mask.sum()) == ann["area"] > 0
            ys, xs = np.nonzero(mask)
            assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            assert mask_utils.toBbox(mask_utils.frPyObjects(rle, *rle["size"])).tolist() == ann["bbox"]


def test_rle_encode_matches_pycocotools() -> None:
    rng = np.random.default_rng(0)
    for first in (0, 1):
        mask = (rng.random((7, 5)) > 0.5).astype(np.uint8)
        mask[0, 0] = first
        rle = rle_encode(mask)
        assert sum(rle["counts"]) == mask.size
        decoded = mask_utils.decode(mask_utils.frPyObjects(rle, 7, 5))
        np.testing.assert_array_equal(decoded, mask)


def test_one_val_image_without_annotations(coco_root: Path) -> None:
    empty = {s: [i for i in _api(coco_root, s).getImgIds() if not _api(coco_root, s).getAnnIds(imgIds=i)]
             for s in SPLITS}  # fmt: skip
    assert empty["train2017"] == [] and len(empty["val2017"]) == 1


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_cocoeval_of_ground_truth_is_perfect(coco_root: Path, iou_type: str) -> None:
    for split in SPLITS:
        gt = _api(coco_root, split)
        dets = []
        for ann in gt.loadAnns(gt.getAnnIds(iscrowd=False)):
            det = {"image_id": ann["image_id"], "category_id": ann["category_id"], "score": 1.0}
            if iou_type == "bbox":
                det["bbox"] = ann["bbox"]
            else:
                rle = gt.annToRLE(ann)
                det["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()}
            dets.append(det)
        with contextlib.redirect_stdout(io.StringIO()):
            ev = COCOeval(gt, gt.loadRes(dets), iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        assert ev.stats[0] == pytest.approx(1.0), (split, iou_type)  # AP@[.5:.95]
        assert ev.stats[1] == pytest.approx(1.0)


def test_deterministic_and_idempotent(coco_root: Path, coco_args: dict, tmp_path: Path) -> None:
    again = synthetic_coco.generate(tmp_path / "a", **coco_args)
    assert _all_files(again) == _all_files(coco_root)
    before = {p: p.stat().st_mtime_ns for p in again.rglob("*")}
    t0 = time.perf_counter()
    assert synthetic_coco.generate(tmp_path / "a", **coco_args) == again
    assert time.perf_counter() - t0 < 0.5
    assert {p: p.stat().st_mtime_ns for p in again.rglob("*")} == before
    other = synthetic_coco.generate(tmp_path / "b", **{**coco_args, "seed": 1})
    assert _all_files(other) != _all_files(coco_root)


def test_rejects_too_few_images(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="num_val"):
        synthetic_coco.generate(tmp_path, num_train=2, num_val=1)


def test_mmdet_coco_dataset_loads_polygons_and_crowd(coco_root: Path) -> None:
    """mmdet's CocoDataset reads it, polygons and crowd RLE become masks, the crowd is ignored."""
    require_detection_stack()
    from mmdet.datasets import CocoDataset
    from mmengine.registry import init_default_scope

    init_default_scope("mmdet")
    pipeline = [
        {"type": "LoadImageFromFile"},
        {"type": "LoadAnnotations", "with_bbox": True, "with_mask": True},
        {"type": "PackDetInputs"},
    ]
    ds = CocoDataset(data_root=str(coco_root), ann_file="annotations/instances_train2017.json",
                     data_prefix={"img": "train2017/"}, pipeline=pipeline)  # fmt: skip
    first = ds[0]["data_samples"]
    assert len(first.ignored_instances) == 1  # the crowd
    assert first.ignored_instances.masks.masks.sum() > 0
    assert first.gt_instances.masks.masks.shape[0] == len(first.gt_instances) >= 1
