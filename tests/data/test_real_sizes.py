"""The stand-ins at the real data's image sizes (``real_sizes=True``, pws.data.real_sizes: a rehearsal's): the
files have the sizes in both orientations, their annotations say the same, the loaders read them (mmdet's
VOCDataset and CocoDataset, torchvision's ImageFolder and CIFAR10), and without the option nothing changes."""

from __future__ import annotations

import json
import pickle
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from detection_stack import require_detection_stack
from PIL import Image

from pws.data.classification import generate_synthetic_imagenet
from pws.data.classification.cifar import NUM_TRAIN_BATCHES, SyntheticCIFAR10, generate_synthetic_cifar
from pws.data.classification.imagenet import imagenet
from pws.data.detection import synthetic_coco, synthetic_voc, validate_coco_root, validate_voc
from pws.data.real_sizes import REAL_SIZES


def size_of(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


def orientations(sizes: list[tuple[int, int]]) -> set[str]:
    return {"landscape" if w > h else "portrait" if h > w else "square" for w, h in sizes}


def test_voc_at_its_real_sizes_in_both_orientations(tmp_path: Path) -> None:
    require_detection_stack()
    from mmdet.datasets import VOCDataset
    from mmengine.registry import init_default_scope

    devkit = synthetic_voc.generate(tmp_path, num_train=4, num_test=3, real_sizes=True, quirks=True)
    assert validate_voc(devkit) == devkit
    init_default_scope("mmdet")
    pipeline = [{"type": "LoadImageFromFile"}, {"type": "LoadAnnotations", "with_bbox": True}]
    for year, split in [("VOC2007", "trainval"), ("VOC2007", "test"), ("VOC2012", "trainval")]:
        ids = (devkit / year / "ImageSets" / "Main" / f"{split}.txt").read_text().split()
        sizes = [size_of(devkit / year / "JPEGImages" / f"{i}.jpg") for i in ids]
        assert set(sizes) <= set(REAL_SIZES["voc"]) and orientations(sizes) == {"landscape", "portrait"}
        for image_id, (w, h) in zip(ids, sizes, strict=True):
            xml = ET.parse(devkit / year / "Annotations" / f"{image_id}.xml").getroot()
            assert (int(xml.findtext("size/width")), int(xml.findtext("size/height"))) == (w, h)
            for box in xml.iter("bndbox"):  # inside the image, in VOC's 1-based pixels
                assert 1 <= int(box.findtext("xmin")) <= int(box.findtext("xmax")) <= w
                assert 1 <= int(box.findtext("ymin")) <= int(box.findtext("ymax")) <= h
        ds = VOCDataset(data_root=str(devkit), ann_file=f"{year}/ImageSets/Main/{split}.txt",
                        data_prefix={"sub_data_root": f"{year}/"}, pipeline=pipeline)  # fmt: skip
        for k in range(2):
            w, h = sizes[k]
            assert ds[k]["img"].shape == (h, w, 3)  # greyscale and CMYK too: three channels


def test_coco_at_its_real_sizes_in_both_orientations(tmp_path: Path) -> None:
    require_detection_stack()
    from mmdet.datasets import CocoDataset
    from mmengine.registry import init_default_scope

    coco = synthetic_coco.generate(tmp_path, num_train=3, num_val=2, object_classes=4, real_sizes=True,
                                   quirks=True)  # fmt: skip
    assert validate_coco_root(coco) == coco
    init_default_scope("mmdet")
    pipeline = [{"type": "LoadImageFromFile"},
                {"type": "LoadAnnotations", "with_bbox": True, "with_mask": True}]  # fmt: skip
    for split in ("train2017", "val2017"):
        doc = json.loads((coco / "annotations" / f"instances_{split}.json").read_text())
        sizes = [size_of(coco / split / im["file_name"]) for im in doc["images"]]
        assert sizes == [(im["width"], im["height"]) for im in doc["images"]]
        assert set(sizes) <= set(REAL_SIZES["coco"]) and orientations(sizes) == {"landscape", "portrait"}
        ds = CocoDataset(data_root=str(coco), ann_file=f"annotations/instances_{split}.json",
                         data_prefix={"img": f"{split}/"}, pipeline=pipeline)  # fmt: skip
        first = ds[0]
        w, h = sizes[0]
        assert first["img"].shape == (h, w, 3) and first["gt_masks"].masks.shape[1:] == (h, w)


def test_imagenet_at_its_real_sizes_before_the_crop(tmp_path: Path) -> None:
    root = generate_synthetic_imagenet(tmp_path, num_train=9, num_val=3, num_classes=3, real_sizes=True,
                                       quirks=True)  # fmt: skip
    sizes = [size_of(p) for p in sorted((root / "train").glob("*/*.JPEG"))]
    assert set(sizes) <= set(REAL_SIZES["imagenet"]) and len(set(sizes)) >= 5  # varied
    assert orientations(sizes) == {"landscape", "portrait", "square"}
    train, val, classes = imagenet(root)  # the full scale's RandomResizedCrop(224) / Resize(256) + crop
    assert classes == 3 and len(train) == 9 and len(val) == 3
    assert all(train[k][0].shape == (3, 224, 224) for k in range(len(train)))  # the quirks included


def test_cifar10_is_32x32_in_the_real_pickle_batches(tmp_path: Path) -> None:
    root = generate_synthetic_cifar(tmp_path, num_train=10, num_test=4)
    folder = root / "cifar-10-batches-py"
    batches = [f"data_batch_{i}" for i in range(1, NUM_TRAIN_BATCHES + 1)]
    assert {p.name for p in folder.iterdir()} >= {*batches, "test_batch", "batches.meta"}
    for name in [*batches, "test_batch"]:
        with open(folder / name, "rb") as f:
            batch = pickle.load(f, encoding="bytes")  # as the real files are read: Python 2 strings as bytes
        assert set(batch) == {b"batch_label", b"labels", b"data", b"filenames"}
        assert batch[b"data"].dtype == np.uint8 and batch[b"data"].shape == (len(batch[b"labels"]), 3072)
    train = SyntheticCIFAR10(str(root), train=True)
    assert len(train) == 10 and train[0][0].size == (32, 32)


def test_without_the_option_the_sizes_and_markers_are_the_smoke_scales(tmp_path: Path) -> None:
    devkit = synthetic_voc.generate(tmp_path / "voc", num_train=2, num_test=2, size=96)
    assert {size_of(p) for p in devkit.glob("VOC*/JPEGImages/*.jpg")} == {(96, 96)}
    coco = synthetic_coco.generate(tmp_path / "coco", num_train=2, num_val=2, object_classes=2)
    assert {size_of(p) for p in coco.glob("*2017/*.jpg")} <= set(synthetic_coco.IMAGE_SIZES)
    markers = [devkit / ".pws_synthetic.json", coco / ".pws_synthetic.json"]
    assert all("real_sizes" not in json.loads(m.read_text()) for m in markers)  # the files are as before
