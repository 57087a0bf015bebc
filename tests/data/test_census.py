"""pws.data.census: each data set's counts beside the official ones, the generators' markers, and the checks
of the classification sets (the first problem, naming its file)."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest

from pws.data import DataMissingError, MalformedFile
from pws.data.census import GENERATED, OFFICIAL, PARTIAL, Census, full_scale_problem, take_census
from pws.data.classification import generate_synthetic_cifar, generate_synthetic_imagenet
from pws.data.classification.cifar import check_cifar10
from pws.data.classification.imagenet import check_imagenet


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated CIFAR-10 of 10 training and 5 test images (tests copy it before changing it)."""
    return generate_synthetic_cifar(tmp_path_factory.mktemp("cifar"), num_train=10, num_test=5)


@pytest.fixture(scope="module")
def imagenet_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated ImageNet of 2 classes, 4 training and 2 validation images of about 8x8 pixels."""
    root = tmp_path_factory.mktemp("imagenet")
    return generate_synthetic_imagenet(root, num_train=4, num_val=2, num_classes=2, image_size=8)


def unmarked_copy(src: Path, dst: Path, marker: str = "synthetic.json") -> Path:
    """``src`` copied to ``dst`` without the generator's marker files: a set that looks real."""
    shutil.copytree(src, dst)
    for path in dst.rglob(marker):
        path.unlink()
    return dst


def test_a_generated_cifar_is_counted_and_named_generated(cifar_root: Path) -> None:
    census = take_census("cifar10", cifar_root)
    assert census.counts == {"train": 10, "test": 5}
    assert census.marker == cifar_root / "cifar-10-batches-py" / "synthetic.json"
    assert census.verdict == GENERATED and census.partial
    problem = census.problem()
    assert "train 10 of 50,000, test 5 of 10,000" in problem and str(census.marker) in problem


def test_without_its_marker_a_small_set_is_partial(cifar_root: Path, tmp_path: Path) -> None:
    census = take_census("cifar10", unmarked_copy(cifar_root, tmp_path / "c"))
    assert census.marker is None and census.verdict == PARTIAL
    assert "partial" in census.problem() and "generated" not in census.problem()


def test_official_counts_without_a_marker_are_complete(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(OFFICIAL, "cifar10", {"train": 10, "test": 5})
    census = Census("cifar10", Path("/data"), {"train": 10, "test": 5})
    assert census.verdict == "OK" and census.problem() is None and census.numbers() == "train 10, test 5"


def test_the_official_counts() -> None:
    assert OFFICIAL["voc0712"] == {"VOC2007 trainval": 5011, "VOC2007 test": 4952, "VOC2012 trainval": 11540}
    assert OFFICIAL["coco"] == {"train2017": 118287, "val2017": 5000}
    assert OFFICIAL["cifar10"] == {"train": 50000, "test": 10000}
    assert OFFICIAL["imagenet"] == {"train": 1281167, "val": 50000, "classes": 1000}


def test_a_malformed_cifar_batch_is_named(cifar_root: Path, tmp_path: Path) -> None:
    root = unmarked_copy(cifar_root, tmp_path / "c")
    assert check_cifar10(root) == root / "cifar-10-batches-py"
    batch = root / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(b"not a pickle")
    with pytest.raises(MalformedFile, match="data_batch_3: not a readable pickled batch"):
        check_cifar10(root)
    batch.write_bytes(pickle.dumps({"data": [[0] * 3072], "labels": [0]}))
    with pytest.raises(MalformedFile, match=r"data_batch_3: 'data' is list"):
        take_census("cifar10", root)
    batch.unlink()
    with pytest.raises(DataMissingError, match="data_batch_3"):
        check_cifar10(root)


def test_cifar_labels_outside_the_classes_are_named(cifar_root: Path, tmp_path: Path) -> None:
    root = unmarked_copy(cifar_root, tmp_path / "c")
    path = root / "cifar-10-batches-py" / "test_batch"
    with path.open("rb") as f:
        batch = pickle.load(f, encoding="latin1")
    batch["labels"] = [10] * len(batch["labels"])
    path.write_bytes(pickle.dumps(batch))
    with pytest.raises(MalformedFile, match=r"test_batch: labels outside 0..9"):
        check_cifar10(root)


def test_imagenet_census_and_check(imagenet_root: Path, tmp_path: Path) -> None:
    census = take_census("imagenet", imagenet_root)
    assert census.counts == {"train": 4, "val": 2, "classes": 2} and census.verdict == GENERATED
    assert "classes 2 of 1,000" in census.problem()
    root = unmarked_copy(imagenet_root, tmp_path / "i")
    assert check_imagenet(root) == root and take_census("imagenet", root).verdict == PARTIAL
    (root / "val" / "n00000009").mkdir()
    with pytest.raises(MalformedFile, match="same class folders; 1 in one only: n00000009"):
        check_imagenet(root)
    (root / "train" / "n00000009").mkdir()
    with pytest.raises(MalformedFile, match=r"train/n00000009: no image files"):
        check_imagenet(root)
    shutil.rmtree(root / "train" / "n00000009")
    shutil.rmtree(root / "val" / "n00000009")
    (root / "val" / "n00000001" / "broken.JPEG").write_text("<html>not found</html>")
    with pytest.raises(MalformedFile, match=r"broken\.JPEG: not an image"):
        check_imagenet(root)


def test_voc_and_coco_census(voc_devkit: Path, voc_args: dict, coco_root: Path, coco_args: dict) -> None:
    voc = take_census("voc0712", voc_devkit.parent)
    assert sum(voc.counts.values()) == voc_args["num_train"] + voc_args["num_test"]
    assert voc.counts["VOC2007 test"] == voc_args["num_test"] and voc.verdict == GENERATED
    assert voc.marker == voc_devkit / ".pws_synthetic.json"
    coco = take_census("coco", coco_root)
    assert coco.counts == {"train2017": coco_args["num_train"], "val2017": coco_args["num_val"]}
    assert coco.marker is not None and "train2017 4 of 118,287" in coco.problem()


def test_full_scale_problem_leaves_missing_and_other_sets_alone(tmp_path: Path, cifar_root: Path) -> None:
    assert full_scale_problem("cifar10", tmp_path / "nowhere") is None  # the loader names what is missing
    assert full_scale_problem("digits", cifar_root) is None  # not one of the paper's data sets
    assert "generated by the project" in full_scale_problem("cifar10", cifar_root)
