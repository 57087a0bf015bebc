"""Classification data: generated CIFAR-10/ImageNet in the real formats, digits, the missing-data error."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.datasets import CIFAR10, ImageFolder

from pws.data import DataMissingError
from pws.data.classification import (
    DATASETS,
    build_datasets,
    dataset_options,
    generate_synthetic_cifar,
    generate_synthetic_imagenet,
)
from pws.data.classification.cifar import LABEL_NAMES, MEAN, STD, SyntheticCIFAR10

BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


def load_bytes(path: Path) -> dict:
    """The official CIFAR recipe: ``pickle.load(f, encoding="bytes")``."""
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


def test_synthetic_cifar_files_have_the_real_format(tmp_path: Path) -> None:
    root = generate_synthetic_cifar(tmp_path, num_train=52, num_test=20, seed=1)
    assert root == tmp_path
    folder = tmp_path / "cifar-10-batches-py"
    assert {p.name for p in folder.iterdir()} >= {*BATCHES, "test_batch", "batches.meta"}
    sizes = []
    for name in [*BATCHES, "test_batch"]:
        batch = load_bytes(folder / name)
        assert set(batch) == {b"batch_label", b"labels", b"data", b"filenames"}
        data, labels = batch[b"data"], batch[b"labels"]
        assert isinstance(data, np.ndarray) and data.dtype == np.uint8
        assert data.ndim == 2 and data.shape[1] == 3072
        assert isinstance(labels, list) and all(type(v) is int and 0 <= v < 10 for v in labels)
        assert len(labels) == len(batch[b"filenames"]) == data.shape[0]
        assert isinstance(batch[b"batch_label"], bytes)
        sizes.append(data.shape[0])
    assert sum(sizes[:5]) == 52 and sizes[5] == 20
    meta = load_bytes(folder / "batches.meta")
    assert meta[b"label_names"] == [name.encode() for name in LABEL_NAMES]
    assert meta[b"num_vis"] == 3072
    # torchvision reads the same files with encoding="latin1": str keys
    with open(folder / "data_batch_1", "rb") as f:
        assert "data" in pickle.load(f, encoding="latin1")


def test_synthetic_cifar_loads_with_torchvision_cifar10(tmp_path: Path) -> None:
    train, test, num_classes = build_datasets(
        "synthetic_cifar", tmp_path, train_augment=False, num_train=50, num_test=20
    )
    assert num_classes == 10 and len(train) == 50 and len(test) == 20
    # the reader is torchvision's CIFAR10 with only the checksums of the real files switched off
    assert isinstance(train, CIFAR10) and "__init__" not in vars(SyntheticCIFAR10)
    assert train.classes == list(LABEL_NAMES)
    batch = load_bytes(tmp_path / "cifar-10-batches-py" / "data_batch_1")
    image, label = train[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and label == batch[b"labels"][0]
    raw = torch.from_numpy(batch[b"data"][0].reshape(3, 32, 32)).float() / 255
    expected = (raw - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    torch.testing.assert_close(image, expected)
    images, labels = next(iter(DataLoader(test, batch_size=8)))
    assert images.shape == (8, 3, 32, 32) and labels.shape == (8,)


def test_synthetic_cifar_is_learnable(tmp_path: Path) -> None:
    """Class-dependent patterns: a nearest-class-mean rule on each image's mean colour and the amplitude
    spectrum of its grey image (blind to the random phase) already separates the classes."""
    generate_synthetic_cifar(tmp_path, num_train=500, num_test=200)
    folder = tmp_path / "cifar-10-batches-py"

    def features(names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        batches = [load_bytes(folder / n) for n in names]
        x = torch.from_numpy(np.concatenate([b[b"data"] for b in batches])).float().view(-1, 3, 32, 32) / 255
        y = torch.tensor([v for b in batches for v in b[b"labels"]])
        grey = x.mean(1) - x.mean((1, 2, 3))[:, None, None]
        spectrum = torch.fft.fft2(grey).abs()[:, :8, :8].flatten(1)
        spectrum = spectrum / spectrum.norm(dim=1, keepdim=True)
        return torch.cat([3 * x.mean((2, 3)), spectrum], 1), y

    x_train, y_train = features(BATCHES)
    x_test, y_test = features(["test_batch"])
    assert torch.bincount(y_train).tolist() == [50] * 10
    centroids = torch.stack([x_train[y_train == c].mean(0) for c in range(10)])
    accuracy = (torch.cdist(x_test, centroids).argmin(1) == y_test).float().mean().item()
    assert accuracy > 0.9


def test_synthetic_sets_are_reused_and_never_overwrite_real_data(tmp_path: Path) -> None:
    generate_synthetic_cifar(tmp_path, num_train=10, num_test=5)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    stamp = batch.stat().st_mtime_ns
    generate_synthetic_cifar(tmp_path, num_train=10, num_test=5)
    assert batch.stat().st_mtime_ns == stamp  # same options: reused
    generate_synthetic_cifar(tmp_path, num_train=20, num_test=5)
    assert len(load_bytes(batch)[b"labels"]) == 4  # other options: regenerated
    assert [p.name for p in tmp_path.iterdir()] == ["cifar-10-batches-py"]  # no temporary folders left

    real = tmp_path / "real"
    (real / "cifar-10-batches-py").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="not generated by synthetic_cifar"):
        generate_synthetic_cifar(real)
    (real / "train").mkdir()
    with pytest.raises(FileExistsError, match="not generated by synthetic_imagenet"):
        generate_synthetic_imagenet(real)


def test_synthetic_imagenet_is_an_imagenet_folder_of_jpegs(tmp_path: Path) -> None:
    root = generate_synthetic_imagenet(tmp_path, num_train=12, num_val=6, num_classes=3, image_size=40)
    assert root == tmp_path
    wnids = ["n00000000", "n00000001", "n00000002"]
    for split, count in (("train", 12), ("val", 6)):
        assert sorted(p.name for p in (tmp_path / split).iterdir() if p.is_dir()) == wnids
        files = sorted((tmp_path / split).glob("n*/*"))
        assert len(files) == count and all(f.suffix == ".JPEG" for f in files)
        with Image.open(files[0]) as image:
            assert image.format == "JPEG" and image.mode == "RGB" and min(image.size) >= 30
        folder = ImageFolder(str(tmp_path / split))  # torchvision's own reader, no options
        assert folder.classes == wnids and len(folder) == count
        assert sorted(folder.targets) == sorted(list(range(3)) * (count // 3))
    assert (tmp_path / "val" / "n00000001" / "ILSVRC2012_val_00000003.JPEG").is_file()


def test_synthetic_imagenet_through_build_datasets(tmp_path: Path) -> None:
    train, test, num_classes = build_datasets(
        "synthetic_imagenet", tmp_path, num_classes=4, num_train=8, num_val=4, image_size=48,
        crop_size=32, resize_size=36,
    )
    assert num_classes == 4 and len(train) == 8 and len(test) == 4
    assert isinstance(train, ImageFolder)
    image, label = train[0]
    assert image.shape == (3, 32, 32) and 0 <= label < 4
    assert test[0][0].shape == (3, 32, 32)


@pytest.mark.parametrize(
    ("name", "missing"),
    [("cifar10", "cifar-10-batches-py"), ("imagenet", "train")],
)
def test_missing_real_data_raises_data_missing_error(tmp_path: Path, name: str, missing: str) -> None:
    with pytest.raises(DataMissingError) as info:
        build_datasets(name, tmp_path / "data")
    error = info.value
    assert isinstance(error, FileNotFoundError)
    assert str(tmp_path / "data" / missing) in str(error)
    assert "How to get it" in str(error)
    assert not (tmp_path / "data").exists()  # nothing downloaded or created


def test_incomplete_real_data_raises_data_missing_error(tmp_path: Path) -> None:
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"not a batch")
    with pytest.raises(DataMissingError, match="corrupted"):
        build_datasets("cifar10", tmp_path)
    (tmp_path / "train" / "n01440764").mkdir(parents=True)
    (tmp_path / "val").mkdir()
    with pytest.raises(DataMissingError, match=str(tmp_path / "train")):
        build_datasets("imagenet", tmp_path)


def test_digits_split() -> None:
    train, test, num_classes = build_datasets("digits", "unused")
    assert num_classes == 10
    assert len(train) + len(test) == 1797
    assert (len(train), len(test)) == (1437, 360)
    assert set(train.targets) == set(test.targets) == set(range(10))
    again, _, _ = build_datasets("digits", "unused")
    assert again.targets == train.targets  # the split is fixed
    image, label = test[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and isinstance(label, int)
    assert torch.equal(image[0], image[1]) and torch.equal(image[0], image[2])
    plain, _, _ = build_datasets("digits", "unused", train_augment=False)
    stacked = torch.stack([plain[i][0] for i in range(len(plain))])
    assert abs(stacked.mean().item()) < 1e-3 and abs(stacked.std().item() - 1) < 1e-2


def test_digits_augmentation_shifts_and_options() -> None:
    train, _, _ = build_datasets("digits", None)
    plain, _, _ = build_datasets("digits", None, train_augment=False)
    shifted = torch.stack([train[5][0] for _ in range(20)])
    assert len({tuple(x.flatten().tolist()) for x in shifted}) > 1
    assert all(train[5][1] == plain[5][1] for _ in range(3))
    big, small, _ = build_datasets("digits", None, image_size=64, test_fraction=0.5)
    assert big[0][0].shape == (3, 64, 64) and abs(len(big) - len(small)) <= 1


def test_builder_options_and_errors(tmp_path: Path) -> None:
    assert set(DATASETS) == {"cifar10", "imagenet", "digits", "synthetic_cifar", "synthetic_imagenet"}
    assert dataset_options("digits") == {
        "image_size": 32, "test_fraction": 0.2, "seed": 0, "train_size": None, "test_size": None,
    }
    train, test, _ = build_datasets("digits", None, train_size=100, test_size=50)
    assert (len(train), len(test)) == (100, 50)
    again, _, _ = build_datasets("digits", None, train_size=100)
    assert again.indices == train.indices
    with pytest.raises(ValueError, match="unknown dataset 'mnist'; choose one of cifar10, imagenet"):
        build_datasets("mnist", tmp_path)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['crop_size'\] for dataset 'digits'"):
        build_datasets("digits", tmp_path, crop_size=3)
    with pytest.raises(ValueError, match="train_size"):
        build_datasets("digits", tmp_path, train_size=5000)
