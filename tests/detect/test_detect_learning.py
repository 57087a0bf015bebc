"""The smoke-scale SSD320 really learns: trained briefly on the generated VOC set, it detects the held-out
test images (VOC07 11-point mAP over a threshold), and the same checkpoint scored against altered test
annotations (labels permuted among the classes, or boxes shifted) falls far below it, so a pipeline that
mixes up labels or boxes fails the threshold."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from detection_stack import require_detection_stack

from .conftest import compose_detect

require_detection_stack()

from mmengine.config import Config  # noqa: E402

from pws.data.detection.synthetic_voc import VOC_CLASSES  # noqa: E402
from pws.detect import run  # noqa: E402
from pws.detect.evaluate import dumped_config, evaluate_run  # noqa: E402

# The smoke scale's SSD run as it is, with PWS (configs/scale/smoke.yaml: 256 training images at 257 pixels,
# 4 epochs of batch 4, 256 iterations at LR 1e-2; 3 minutes on one idle CPU thread, 8-9 beside the other
# test process): the 48 held-out test images' mAP must reach MAP_THRESHOLD, and the same checkpoint must miss
# it on altered annotations. Measured at one thread, seed 0 (seeds 1 / 2): PWS 75.1 (74.6 / 73.3), 20.9 with
# the labels permuted, 0.5 with the boxes shifted; BN 67.7 (64.4 / 73.1), 16.4 and 0.5 (the same pipeline:
# one method suffices to check it). After 2 epochs (x0.1 after the first) both stay below the threshold: BN
# 37.2, PWS 34.9. (Permuted labels keep some AP: every detection is kept, score threshold 0, and an object's
# second-class detections outrank the background.)
MAP_THRESHOLD = 40.0
NUM_CLASSES = 2  # the smoke scale's (detect.synthetic.num_classes)
Change = Callable[[str, list[int]], tuple[str, list[int]]]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[Path, dict]:
    """A finished smoke-scale SSD320-VGG16 run with PWS (its directory and record)."""
    root = tmp_path_factory.mktemp("learn-pws")
    cfg = compose_detect([f"data_root={data_dir}", "norm=pws"])
    assert cfg.data.num_classes == NUM_CLASSES
    record = run(cfg, root / "run")
    return root / "run", record


def _altered_test_set(devkit: Path, out: Path, change: Change) -> Path:
    """A copy of ``devkit``'s VOC2007 test split (images linked) with every object's name and box
    replaced by ``change(name, [xmin, ymin, xmax, ymax])``; returns the copy's VOCdevkit root."""
    src, dst = devkit / "VOC2007", out / "VOCdevkit" / "VOC2007"
    (dst / "Annotations").mkdir(parents=True)
    shutil.copytree(src / "ImageSets", dst / "ImageSets")
    (dst / "JPEGImages").symlink_to(src / "JPEGImages")
    for image_id in (src / "ImageSets" / "Main" / "test.txt").read_text().split():
        tree = ET.parse(src / "Annotations" / f"{image_id}.xml")
        for obj in tree.getroot().iter("object"):
            box = obj.find("bndbox")
            keys = ("xmin", "ymin", "xmax", "ymax")
            name, coords = change(obj.findtext("name"), [int(box.findtext(k)) for k in keys])
            obj.find("name").text = name
            for k, v in zip(keys, coords, strict=True):
                box.find(k).text = str(v)
        tree.write(dst / "Annotations" / f"{image_id}.xml", encoding="utf-8")
    return out / "VOCdevkit"


def _next_class(name: str, box: list[int]) -> tuple[str, list[int]]:
    """Each drawn class relabelled as the next one (a cyclic permutation: no object keeps its class)."""
    return VOC_CLASSES[(VOC_CLASSES.index(name) + 1) % NUM_CLASSES], box


def _shifted(name: str, box: list[int]) -> tuple[str, list[int]]:
    """The box moved right and down by 60% of its size (IoU with the true box below 0.2)."""
    x0, y0, x1, y1 = box
    dx, dy = round(0.6 * (x1 - x0)), round(0.6 * (y1 - y0))
    return name, [x0 + dx, y0 + dy, x1 + dx, y1 + dy]


@pytest.mark.slow
def test_ssd_learns_the_generated_voc_set(trained: tuple[Path, dict]) -> None:
    _, record = trained
    assert record["status"] == "finished", record.get("error")
    assert record["mAP"] >= MAP_THRESHOLD, record["history"]


@pytest.mark.slow
@pytest.mark.parametrize("change", [_next_class, _shifted], ids=["labels_permuted", "boxes_shifted"])
def test_the_threshold_fails_on_wrong_annotations(
    trained: tuple[Path, dict], change: Change, tmp_path: Path
) -> None:
    run_dir, record = trained
    devkit = Path(Config.fromfile(str(dumped_config(run_dir))).data_root)
    assert evaluate_run(run_dir)["mAP"] == pytest.approx(record["mAP"], abs=1e-3)  # the run's own number
    altered = evaluate_run(run_dir, data_root=_altered_test_set(devkit, tmp_path, change))
    assert altered["mAP"] < MAP_THRESHOLD <= record["mAP"], (altered, record["mAP"])
