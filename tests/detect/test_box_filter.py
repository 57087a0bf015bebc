"""No detection config drops small ground-truth boxes in training (SSD's augmentation has no such filter):
the training datasets' filter_cfg has no ``bbox_min_size``, and its ``min_size`` filters images, not boxes."""

from __future__ import annotations

from pathlib import Path

import pytest
from detection_stack import require_detection_stack

require_detection_stack()
from mmengine.config import Config  # noqa: E402

from pws.detect.config import COCO_DATASETS, _mmdet_config  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _train_datasets(train: dict) -> list[dict]:
    while "dataset" in train:  # RepeatDataset
        train = train["dataset"]
    return list(train["datasets"]) if train.get("type") == "ConcatDataset" else [train]


@pytest.mark.parametrize("name", ["ssd320_vgg16", "ssd320_r50", "mask_rcnn_r50_fpn", "coco"])
def test_no_ground_truth_box_is_dropped_for_its_size(name: str) -> None:
    if name == "coco":  # what the COCO runs train on (pws.detect.config swaps it in)
        train = _mmdet_config(COCO_DATASETS)["train_dataloader"]["dataset"]
    else:
        train = Config.fromfile(str(REPO / "configs" / "mmdet" / f"{name}.py")).to_dict()["train_dataloader"]
        train = train["dataset"]
    datasets = _train_datasets(train)
    assert datasets
    for dataset in datasets:
        assert "bbox_min_size" not in (dataset.get("filter_cfg") or {}), (name, dataset.get("filter_cfg"))


def test_min_size_filters_images_not_boxes() -> None:
    """mmdet's VOC dataset with min_size alone keeps a 10 px box; with bbox_min_size it ignores it."""
    from mmdet.datasets import XMLDataset

    class Tiny(XMLDataset):
        def __init__(self, filter_cfg):  # only what parse_data_info reads
            self.filter_cfg = filter_cfg
            self.test_mode = False
            self.cat2label = {"a": 0}
            self._metainfo = {"classes": ("a",)}

    import xml.etree.ElementTree as ET

    xml = ("<annotation><size><width>300</width><height>300</height></size><object><name>a</name>"
           "<difficult>0</difficult><bndbox><xmin>10</xmin><ymin>10</ymin><xmax>20</xmax><ymax>20</ymax>"
           "</bndbox></object></annotation>")
    root = ET.fromstring(xml)
    kept = Tiny({"filter_empty_gt": True, "min_size": 32})._parse_instance_info(root, minus_one=False)
    ignored = Tiny({"min_size": 32, "bbox_min_size": 32})._parse_instance_info(root, minus_one=False)
    assert [i["ignore_flag"] for i in kept] == [0] and [i["ignore_flag"] for i in ignored] == [1]
