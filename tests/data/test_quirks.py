"""The generated sets with the real files' quirks (``quirks=True``, pws.data.quirks): the odd files are there
as the real sets have them, the checks accept them, and the loaders read them (torchvision's ImageFolder;
mmdet's VOCDataset and CocoDataset with their pipelines' image and annotation loading)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from detection_stack import require_detection_stack
import torch
from PIL import Image

from pws.data.classification import generate_synthetic_imagenet
from pws.data.classification.imagenet import MEAN, STD, check_imagenet, imagenet
from pws.data.detection import synthetic_coco, synthetic_voc, validate_coco_root, validate_voc
from pws.data.quirks import save_image


def format_of(path: Path) -> tuple[str, str]:
    with Image.open(path) as im:
        return im.mode, im.format


def test_save_image_writes_each_quirk(tmp_path: Path) -> None:
    pixels = np.full((8, 8, 3), 128, np.uint8)
    for quirk, expected in [(None, ("RGB", "JPEG")), ("greyscale", ("L", "JPEG")), ("cmyk", ("CMYK", "JPEG")),
                            ("png", ("RGB", "PNG"))]:  # fmt: skip
        save_image(pixels, tmp_path / f"{quirk}.JPEG", quirk)
        assert format_of(tmp_path / f"{quirk}.JPEG") == expected
    with pytest.raises(ValueError, match="unknown quirk"):
        save_image(pixels, tmp_path / "x.JPEG", "tiff")


def test_imagenet_quirks_are_read_as_rgb(tmp_path: Path) -> None:
    root = generate_synthetic_imagenet(tmp_path, num_train=4, num_val=2, num_classes=2, image_size=16,
                                       quirks=True)  # fmt: skip
    files = sorted((root / "train").glob("*/*.JPEG"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    assert [format_of(p) for p in files] == [("L", "JPEG"), ("CMYK", "JPEG"), ("RGB", "PNG"), ("RGB", "JPEG")]
    assert check_imagenet(root) == root
    train, _, classes = imagenet(root, train_augment=False, crop_size=16, resize_size=16)
    assert classes == 2 and len(train) == 4
    for k in range(len(train)):
        image, _ = train[k]
        assert image.shape == (3, 16, 16)
    grey = train[[Path(p).name for p, _ in train.samples].index(files[0].name)][0]
    pixels = grey * torch.tensor(STD)[:, None, None] + torch.tensor(MEAN)[:, None, None]
    assert torch.allclose(pixels[0], pixels[1], atol=1e-5) and torch.allclose(pixels[0], pixels[2], atol=1e-5)
    colour = train[[Path(p).name for p, _ in train.samples].index(files[3].name)][0]
    assert not torch.allclose(colour[0], colour[1], atol=0.5)  # what the check tells apart


def test_voc_quirks(tmp_path: Path) -> None:
    devkit = synthetic_voc.generate(tmp_path, num_train=4, num_test=2, size=64, quirks=True)
    assert validate_voc(devkit) == devkit
    assert format_of(devkit / "VOC2007" / "JPEGImages" / "000001.jpg")[0] == "L"
    assert format_of(devkit / "VOC2007" / "JPEGImages" / "000003.jpg")[0] == "CMYK"  # the first test image
    only = ET.parse(devkit / "VOC2012" / "Annotations" / "2012_000001.xml").getroot().findall("object")
    assert [o.findtext("difficult") for o in only] == ["1"]
    for xml in devkit.glob("VOC*/Annotations/*.xml"):
        objects = ET.parse(xml).getroot().findall("object")
        assert all(o.findtext("occluded") in ("0", "1") for o in objects)
        if objects:
            parts = objects[0].findall("part")
            assert [p.findtext("name") for p in parts] == ["head", "hand"]
            assert all(p.find("bndbox/xmin") is not None for p in parts)


def test_mmdet_reads_the_voc_quirks(tmp_path: Path) -> None:
    require_detection_stack()
    from mmdet.datasets import VOCDataset
    from mmengine.registry import init_default_scope

    init_default_scope("mmdet")
    devkit = synthetic_voc.generate(tmp_path, num_train=4, num_test=2, size=64, quirks=True)
    pipeline = [{"type": "LoadImageFromFile"}, {"type": "LoadAnnotations", "with_bbox": True}]
    for year, split in [("VOC2007", "trainval"), ("VOC2007", "test"), ("VOC2012", "trainval")]:
        ds = VOCDataset(data_root=str(devkit), ann_file=f"{year}/ImageSets/Main/{split}.txt",
                        data_prefix={"sub_data_root": f"{year}/"}, pipeline=pipeline)  # fmt: skip
        first = ds[0]
        assert first["img"].shape == (64, 64, 3)  # greyscale and CMYK decoded to three channels
        if year == "VOC2012":
            assert first["gt_ignore_flags"].tolist() == [True]  # its one object is difficult


def test_coco_quirks_are_read_by_mmdet(tmp_path: Path) -> None:
    coco = synthetic_coco.generate(tmp_path, num_train=2, num_val=2, quirks=True)
    assert validate_coco_root(coco) == coco
    require_detection_stack()
    from mmdet.datasets import CocoDataset
    from mmengine.registry import init_default_scope

    init_default_scope("mmdet")
    pipeline = [{"type": "LoadImageFromFile"},
                {"type": "LoadAnnotations", "with_bbox": True, "with_mask": True}]  # fmt: skip
    ds = CocoDataset(data_root=str(coco), ann_file="annotations/instances_train2017.json",
                     data_prefix={"img": "train2017/"}, pipeline=pipeline)  # fmt: skip
    first, last = ds.get_data_info(0)["instances"], ds.get_data_info(1)["instances"]
    assert len(last) == 0  # the last train image has no annotation
    two_parts = next(i for i in first if not i["ignore_flag"])["mask"]
    assert len(two_parts) == 2  # two polygons
    loaded = ds[0]
    assert loaded["gt_masks"].masks.shape[0] == len(first)  # the polygons and the crowd's RLE as masks
