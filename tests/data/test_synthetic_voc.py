"""The generated VOC set: real VOCdevkit layout and XML, difficult flags, an empty image, determinism."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from detection_stack import require_detection_stack
from PIL import Image

from pws.data.detection import is_synthetic, synthetic_voc, validate_voc
from pws.data.detection.synthetic_voc import POSES, VOC_CLASSES


def _ids(devkit: Path, year: str, split: str) -> list[str]:
    return (devkit / year / "ImageSets" / "Main" / f"{split}.txt").read_text().split()


def _objects(devkit: Path, year: str, image_id: str) -> list[ET.Element]:
    return ET.parse(devkit / year / "Annotations" / f"{image_id}.xml").getroot().findall("object")


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_counts(voc_devkit: Path, voc_args: dict) -> None:
    assert voc_devkit.name == "VOCdevkit"
    assert is_synthetic(voc_devkit)
    n07, n12 = len(_ids(voc_devkit, "VOC2007", "trainval")), len(_ids(voc_devkit, "VOC2012", "trainval"))
    assert n07 + n12 == voc_args["num_train"] and n07 >= 1 and n12 >= 1
    assert len(_ids(voc_devkit, "VOC2007", "test")) == voc_args["num_test"]
    assert not set(_ids(voc_devkit, "VOC2007", "trainval")) & set(_ids(voc_devkit, "VOC2007", "test"))
    for year in ("VOC2007", "VOC2012"):
        tv = _ids(voc_devkit, year, "trainval")
        assert sorted(_ids(voc_devkit, year, "train") + _ids(voc_devkit, year, "val")) == sorted(tv)
        assert all(i.startswith("2012_") for i in tv) == (year == "VOC2012")
    assert not (voc_devkit / "VOC2012" / "ImageSets" / "Main" / "test.txt").exists()


def test_xml_and_jpeg_are_real_voc(voc_devkit: Path) -> None:
    for year, split in (("VOC2007", "trainval"), ("VOC2007", "test"), ("VOC2012", "trainval")):
        for image_id in _ids(voc_devkit, year, split):
            with Image.open(voc_devkit / year / "JPEGImages" / f"{image_id}.jpg") as im:
                assert im.format == "JPEG" and im.mode == "RGB" and im.size == (320, 320)
            ann = ET.parse(voc_devkit / year / "Annotations" / f"{image_id}.xml").getroot()
            assert ann.tag == "annotation" and ann.findtext("filename") == f"{image_id}.jpg"
            assert ann.findtext("folder") == year
            assert (ann.findtext("size/width"), ann.findtext("size/height"), ann.findtext("size/depth")) == (
                "320", "320", "3")  # fmt: skip
            for obj in ann.findall("object"):
                assert obj.findtext("name") in VOC_CLASSES
                assert obj.findtext("pose") in POSES
                assert obj.findtext("truncated") in ("0", "1") and obj.findtext("difficult") in ("0", "1")
                x1, y1, x2, y2 = (int(obj.findtext(f"bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax"))
                assert 1 <= x1 < x2 <= 320 and 1 <= y1 < y2 <= 320  # VOC: 1-based, inclusive
    validate_voc(voc_devkit)


def test_difficult_objects_in_every_split(voc_devkit: Path) -> None:
    for year, split in (("VOC2007", "trainval"), ("VOC2007", "test"), ("VOC2012", "trainval")):
        flags = [
            o.findtext("difficult")
            for i in _ids(voc_devkit, year, split)
            for o in _objects(voc_devkit, year, i)
        ]
        assert "1" in flags and "0" in flags, (year, split)


def test_one_test_image_without_objects(voc_devkit: Path) -> None:
    counts = {i: len(_objects(voc_devkit, year, i)) for year, split in
              (("VOC2007", "trainval"), ("VOC2007", "test"), ("VOC2012", "trainval"))
              for i in _ids(voc_devkit, year, split)}  # fmt: skip
    empty = [i for i, n in counts.items() if n == 0]
    assert empty == [_ids(voc_devkit, "VOC2007", "test")[-1]]


def test_boxes_hold_saturated_objects(voc_devkit: Path) -> None:
    """The drawn objects are where the boxes say: saturated colour inside, grey-ish background outside."""
    for image_id in _ids(voc_devkit, "VOC2007", "trainval"):
        hsv = np.asarray(Image.open(voc_devkit / "VOC2007" / "JPEGImages" / f"{image_id}.jpg").convert("HSV"))
        inside = np.zeros(hsv.shape[:2], bool)
        for obj in _objects(voc_devkit, "VOC2007", image_id):
            x1, y1, x2, y2 = (int(obj.findtext(f"bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax"))
            box = hsv[y1 - 1 : y2, x1 - 1 : x2, 1]
            assert (box > 150).mean() > 0.2, (image_id, obj.findtext("name"))
            inside[y1 - 1 : y2, x1 - 1 : x2] = True
        assert (hsv[~inside, 1] > 150).mean() < 0.02


def test_deterministic_and_idempotent(voc_devkit: Path, tmp_path: Path, voc_args: dict) -> None:
    again = synthetic_voc.generate(tmp_path / "a", **voc_args)
    assert _all_files(again) == _all_files(voc_devkit)  # same seed, same bytes

    before = {p: p.stat().st_mtime_ns for p in again.rglob("*")}
    t0 = time.perf_counter()
    assert synthetic_voc.generate(tmp_path / "a", **voc_args) == again
    assert time.perf_counter() - t0 < 0.5
    assert {p: p.stat().st_mtime_ns for p in again.rglob("*")} == before  # nothing rewritten

    other = synthetic_voc.generate(tmp_path / "b", **{**voc_args, "seed": 1})
    assert _all_files(other).keys() == _all_files(voc_devkit).keys()
    assert _all_files(other) != _all_files(voc_devkit)

    bigger = synthetic_voc.generate(tmp_path / "a", **{**voc_args, "num_test": 5})  # other args: replaced
    assert len(_ids(bigger, "VOC2007", "test")) == 5


def test_sixteen_images_in_under_five_seconds(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    devkit = synthetic_voc.generate(tmp_path, num_train=10, num_test=6)
    assert time.perf_counter() - t0 < 5.0
    assert len(list(devkit.rglob("*.jpg"))) == 16


def test_never_overwrites_a_folder_it_did_not_write(tmp_path: Path, voc_args: dict) -> None:
    (tmp_path / "VOCdevkit" / "VOC2007").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="VOCdevkit"):
        synthetic_voc.generate(tmp_path, **voc_args)
    assert list((tmp_path / "VOCdevkit").iterdir()) == [tmp_path / "VOCdevkit" / "VOC2007"]


def test_rejects_too_few_images(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="num_test"):
        synthetic_voc.generate(tmp_path, num_train=4, num_test=1)


def test_mmdet_voc_dataset_and_metric(voc_devkit: Path, voc_args: dict) -> None:
    """mmdet's own VOCDataset reads the set (difficult -> ignored) and VOCMetric scores the GT at mAP 1."""
    require_detection_stack()
    import torch
    from mmdet.datasets import VOCDataset
    from mmdet.evaluation import VOCMetric

    test = VOCDataset(data_root=str(voc_devkit), ann_file="VOC2007/ImageSets/Main/test.txt",
                      data_prefix={"sub_data_root": "VOC2007/"}, test_mode=True, pipeline=[])  # fmt: skip
    assert len(test) == voc_args["num_test"] and test.metainfo["dataset_type"] == "VOC2007"
    samples, n_ignored = [], 0
    for i in range(len(test)):
        inst = test.get_data_info(i)["instances"]
        b = torch.tensor([x["bbox"] for x in inst], dtype=torch.float32).reshape(-1, 4)
        lab = torch.tensor([x["bbox_label"] for x in inst], dtype=torch.long)
        ign = torch.tensor([bool(x["ignore_flag"]) for x in inst], dtype=torch.bool)
        n_ignored += int(ign.sum())
        samples.append({
            "gt_instances": {"bboxes": b[~ign], "labels": lab[~ign]},
            "ignored_instances": {"bboxes": b[ign], "labels": lab[ign]},
            "pred_instances": {"bboxes": b, "scores": torch.ones(len(b)), "labels": lab},
        })  # fmt: skip
    assert n_ignored >= 1
    metric = VOCMetric(metric="mAP", eval_mode="11points")
    metric.dataset_meta = test.metainfo
    metric.process({}, samples)
    assert metric.evaluate(len(samples))["pascal_voc/mAP"] == pytest.approx(1.0)
