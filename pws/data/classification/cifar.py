"""CIFAR-10: the real data set through torchvision, and a generated stand-in in the exact same file format.

Both load through torchvision's :class:`~torchvision.datasets.CIFAR10` from ``root/cifar-10-batches-py/``
(``data_batch_1`` ... ``data_batch_5``, ``test_batch``, ``batches.meta``), with the paper's augmentation for
training: "the simple data augmentation in (Lee et al. 2015)", i.e. 4-pixel zero padding, a random 32x32
crop and a random horizontal flip; then per-channel normalization with the CIFAR-10 statistics.

File format of the generated batches (as the real ones, written by Python 2's ``cPickle``): each batch is a
pickled dict whose keys are Python 2 ``str`` (so ``pickle.load(f, encoding="bytes")`` gives ``b"data"``,
``b"labels"``, ... as in the official recipe, and ``encoding="latin1"`` gives ``"data"``, ... as torchvision
reads them): ``data`` a uint8 ``numpy`` array ``(N, 3072)`` (1024 red, 1024 green, 1024 blue values per
image, each a 32x32 row-major plane), ``labels`` a list of N ints in 0..9, ``batch_label`` and
``filenames``; ``batches.meta`` holds ``label_names`` (10 names), ``num_cases_per_batch`` and ``num_vis``.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torchvision.transforms as T
from torch.utils.data import Dataset
from torchvision.datasets import CIFAR10

from pws.data.census import Census
from pws.data.classification.synthetic import (
    MARKER,
    balanced_labels,
    make_temp_dir,
    pattern_images,
    publish,
    read_marker,
    write_marker,
)
from pws.data.errors import DataMissingError, MalformedFile

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
LABEL_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
NUM_CLASSES = 10
NUM_TRAIN_BATCHES = 5
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


def cifar_transforms(train_augment: bool) -> tuple[T.Compose, T.Compose]:
    """(train, test) transforms: pad-4 random crop + horizontal flip for training (if ``train_augment``)."""
    normalize = [T.ToTensor(), T.Normalize(MEAN, STD)]
    test = T.Compose(normalize)
    if not train_augment:
        return test, test
    return T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), *normalize]), test


def cifar10(
    root: str | Path, *, train_augment: bool = True, download: bool = False
) -> tuple[Dataset, Dataset, int]:
    """The real CIFAR-10 (50,000 train, 10,000 test images) from ``root/cifar-10-batches-py``.

    ``download=True`` lets torchvision fetch and extract the archive into ``root`` when it is not there
    (network needed); otherwise a missing or corrupted copy raises :class:`pws.data.DataMissingError`.
    """
    root = Path(root)
    folder = root / CIFAR10.base_folder
    how = how_to_get(root)
    if not download and not folder.is_dir():
        raise DataMissingError("CIFAR-10 (python version)", folder, how)
    train_tf, test_tf = cifar_transforms(train_augment)
    try:
        train = CIFAR10(str(root), train=True, transform=train_tf, download=download)
        test = CIFAR10(str(root), train=False, transform=test_tf)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted."
        raise DataMissingError("CIFAR-10 (python version; files missing or corrupted)", folder, how) from err
    return train, test, NUM_CLASSES


def how_to_get(root: Path) -> str:
    """How to put the real CIFAR-10 under ``root``."""
    return (
        f"download {CIFAR10_URL} and extract it into {root} (it unpacks to {CIFAR10.base_folder}/), or ask "
        "for the download (download=True); data=synthetic_cifar generates a small stand-in in the same format"
    )


# --------------------------------------------------------------------------------------------------------
# Checks and counts


def batch_size_of(path: Path) -> int:
    """The number of images of one batch file (``data_batch_N``, ``test_batch``), checked as torchvision
    reads it: a pickled dict with ``data`` (uint8, ``(N, 3072)``) and ``labels`` (N ints in 0..9).

    Raises :class:`~pws.data.DataMissingError` for a missing file and :class:`~pws.data.MalformedFile`
    naming the file and what is wrong with it.
    """
    if not path.is_file():
        raise DataMissingError(f"CIFAR-10 batch file {path.name}", path, how_to_get(path.parent.parent))
    try:
        with path.open("rb") as f:
            batch = pickle.load(f, encoding="latin1")
    except Exception as e:
        raise MalformedFile(path, f"not a readable pickled batch ({type(e).__name__}: {e})") from e
    if not isinstance(batch, dict) or not {"data", "labels"} <= set(batch):
        raise MalformedFile(path, "expected a pickled dict with 'data' and 'labels'")
    data, labels = batch["data"], np.asarray(batch["labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise MalformedFile(path, f"'data' is {type(data).__name__} {getattr(data, 'dtype', '')} of shape "
                                  f"{shape}, expected uint8 of shape (N, 3072)")  # fmt: skip
    if labels.shape != (len(data),):
        raise MalformedFile(path, f"{labels.size} labels for {len(data)} images")
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise MalformedFile(path, f"labels outside 0..{NUM_CLASSES - 1} ({labels.min()}..{labels.max()})")
    return len(data)


def census_cifar10(root: Path) -> Census:
    """The CIFAR-10 batches at ``root/cifar-10-batches-py`` counted (train: the five ``data_batch_N``, test:
    ``test_batch``, each read and checked by :func:`batch_size_of`), and the generator's marker if any."""
    folder = Path(root) / CIFAR10.base_folder
    if not folder.is_dir():
        raise DataMissingError("CIFAR-10 (python version)", folder, how_to_get(Path(root)))
    train = sum(batch_size_of(folder / f"data_batch_{i}") for i in range(1, NUM_TRAIN_BATCHES + 1))
    marker = folder / MARKER
    return Census("cifar10", folder, {"train": train, "test": batch_size_of(folder / "test_batch")},
                  marker if marker.is_file() else None)  # fmt: skip


def check_cifar10(root: Path) -> Path:
    """Every file of ``root/cifar-10-batches-py`` read and checked (the batches, ``batches.meta`` with its 10
    ``label_names``); returns the folder. The first problem raises, naming its file."""
    folder = census_cifar10(root).root
    meta = folder / "batches.meta"
    try:
        with meta.open("rb") as f:
            names = pickle.load(f, encoding="latin1")["label_names"]
    except FileNotFoundError as e:
        raise DataMissingError("CIFAR-10 batches.meta", meta, how_to_get(Path(root))) from e
    except Exception as e:
        raise MalformedFile(meta, f"no readable 'label_names' ({type(e).__name__}: {e})") from e
    if len(names) != NUM_CLASSES:
        raise MalformedFile(meta, f"{len(names)} label_names, expected {NUM_CLASSES}")
    return folder


# --------------------------------------------------------------------------------------------------------
# Generated stand-in


class SyntheticCIFAR10(CIFAR10):
    """torchvision's CIFAR10 reader with the checksums of the real files switched off (same loading code)."""

    train_list = [[f"data_batch_{i}", None] for i in range(1, NUM_TRAIN_BATCHES + 1)]  # noqa: RUF012
    test_list = [["test_batch", None]]  # noqa: RUF012
    meta = {"filename": "batches.meta", "key": "label_names", "md5": None}  # noqa: RUF012

    def download(self) -> None:  # never fetch the real data under the synthetic name
        return None


def synthetic_cifar(
    root: str | Path,
    *,
    train_augment: bool = True,
    download: bool = False,
    num_train: int = 1000,
    num_test: int = 200,
    seed: int = 0,
) -> tuple[Dataset, Dataset, int]:
    """A small generated CIFAR-10 in the real file format, written to ``root/cifar-10-batches-py`` if absent.

    kwargs: ``num_train`` (1000, split over the five ``data_batch_*`` files), ``num_test`` (200), ``seed``
    (0). The same options reuse the files; others regenerate them. ``download`` is ignored (nothing to fetch).
    Loaded with torchvision's CIFAR10 reader and the same transforms as :func:`cifar10`.
    """
    del download
    generate_synthetic_cifar(root, num_train=num_train, num_test=num_test, seed=seed)
    train_tf, test_tf = cifar_transforms(train_augment)
    train = SyntheticCIFAR10(str(root), train=True, transform=train_tf)
    test = SyntheticCIFAR10(str(root), train=False, transform=test_tf)
    return train, test, NUM_CLASSES


def generate_synthetic_cifar(
    root: str | Path, *, num_train: int = 1000, num_test: int = 200, seed: int = 0
) -> Path:
    """Write the synthetic CIFAR-10 batches to ``root/cifar-10-batches-py`` unless there; return ``root``.

    Refuses (``FileExistsError``) to replace a ``cifar-10-batches-py`` that it did not generate.
    """
    if num_train < NUM_TRAIN_BATCHES or num_test < 1:
        raise ValueError(
            f"synthetic_cifar needs num_train >= {NUM_TRAIN_BATCHES} and num_test >= 1, "
            f"got {num_train} and {num_test}"
        )
    folder = Path(root) / CIFAR10.base_folder
    options = {"dataset": "synthetic_cifar", "num_train": int(num_train), "num_test": int(num_test),
               "seed": int(seed)}
    marker = read_marker(folder)
    if marker == options:
        return Path(root)
    if folder.exists() and marker is None:
        raise FileExistsError(
            f"{folder} exists and was not generated by synthetic_cifar (no synthetic.json): it may be the "
            "real CIFAR-10. Give synthetic_cifar a root of its own."
        )
    rng = np.random.default_rng(seed)
    tmp = make_temp_dir(folder)
    train_labels = balanced_labels(num_train, NUM_CLASSES, rng)
    for i, labels in enumerate(np.array_split(train_labels, NUM_TRAIN_BATCHES), start=1):
        _write_batch(tmp / f"data_batch_{i}", labels, f"training batch {i} of {NUM_TRAIN_BATCHES}", rng)
    _write_batch(tmp / "test_batch", balanced_labels(num_test, NUM_CLASSES, rng), "testing batch 1 of 1", rng)
    meta = {
        _Py2Str("num_cases_per_batch"): int(np.ceil(num_train / NUM_TRAIN_BATCHES)),
        _Py2Str("label_names"): [_Py2Str(name) for name in LABEL_NAMES],
        _Py2Str("num_vis"): 3072,
    }
    _dump_py2(meta, tmp / "batches.meta")
    write_marker(tmp, options)
    publish(tmp, folder, options)
    return Path(root)


def _write_batch(path: Path, labels: np.ndarray, batch_label: str, rng: np.random.Generator) -> None:
    images = pattern_images(labels, NUM_CLASSES, 32, 32, rng)  # (N, 32, 32, 3)
    data = np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(labels), 3072))
    batch = {
        _Py2Str("batch_label"): _Py2Str(batch_label),
        _Py2Str("labels"): [int(v) for v in labels],
        _Py2Str("data"): data,
        _Py2Str("filenames"): [
            _Py2Str(f"synthetic_{LABEL_NAMES[v]}_{k:05d}.png") for k, v in enumerate(labels)
        ],
    }
    _dump_py2(batch, path)


class _Py2Str(str):
    """A ``str`` that :class:`_Py2Pickler` writes as a Python 2 ``str`` (as the real CIFAR files have)."""


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler: its dispatch table can be extended
    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: _Py2Str) -> None:
        data = obj.encode("latin-1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[_Py2Str] = save_py2_str


def _dump_py2(obj: Any, path: Path) -> None:
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump(obj)
