"""``build_datasets``: the data sets of Tables 4 and 5 and their smoke-scale stand-ins, by name.

Names and their kwargs (defaults):

* ``cifar10``: the real CIFAR-10 from ``root/cifar-10-batches-py`` through torchvision (``download=True``
  fetches it). No kwargs of its own.
* ``imagenet``: the real ImageNet from ``root/train`` and ``root/val`` (ImageFolder). ``crop_size`` (224),
  ``resize_size`` (256, test only).
* ``digits``: scikit-learn's 1,797 real 8x8 digits upsampled to RGB ``image_size`` (``root`` ignored), a
  fixed stratified split (1,437 train / 360 test). ``image_size`` (32), ``test_fraction`` (0.2), ``seed`` (0,
  the split's seed: leave it fixed so that runs share one test set).
* ``synthetic_cifar``: generated CIFAR-10 pickle batches under ``root/cifar-10-batches-py`` (created if
  absent), read by torchvision's CIFAR10 code. ``num_train`` (1000), ``num_test`` (200), ``seed`` (0).
* ``synthetic_imagenet``: generated ``root/train/<wnid>/*.JPEG`` and ``root/val/<wnid>/*.JPEG`` (created if
  absent), read as ``imagenet``. ``num_classes`` (10), ``num_train`` (200), ``num_val`` (50),
  ``image_size`` (80, of the generated JPEGs), ``crop_size`` (224), ``resize_size`` (256), ``seed`` (0),
  ``quirks`` (False: the real files' odd formats) and ``real_sizes`` (False: ImageNet's image sizes).

Every name also takes ``train_size`` and ``test_size`` (None = all): a fixed random subset (drawn with seed
0, the same on every call) of that many images, e.g. for a quick run on the real data.

Samples are ``(image, label)`` with ``image`` a normalized float tensor ``(3, H, W)`` (32x32 for the CIFAR
sets and digits by default, ``crop_size`` for the ImageNet sets) and ``label`` an int. Training sets are
augmented unless ``train_augment=False``: CIFAR pad-4 random crop + horizontal flip (Lee et al. 2015),
ImageNet RandomResizedCrop + flip, digits a random shift of up to 4 pixels. Augmentation draws from torch's
global random generator (seed it, or the DataLoader's workers, for reproducible runs).

Missing real data raises :class:`pws.data.DataMissingError` (a ``FileNotFoundError``) naming the path and
how to get the data; nothing is downloaded unless ``download=True`` (only CIFAR-10 can be). The generated
sets are written into ``root`` when absent and reused afterwards (``scripts/prepare_data.py`` writes them
ahead of time); generating them in several processes at once is safe (atomic renames), but in a
multi-process (DDP) run it is cheaper to build on rank 0 first.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from pws.data.classification.cifar import cifar10, synthetic_cifar
from pws.data.classification.digits import digits
from pws.data.classification.imagenet import imagenet, synthetic_imagenet

DATASETS: dict[str, Callable[..., tuple[Dataset, Dataset, int]]] = {
    "cifar10": cifar10,
    "imagenet": imagenet,
    "digits": digits,
    "synthetic_cifar": synthetic_cifar,
    "synthetic_imagenet": synthetic_imagenet,
}
SUBSET_OPTIONS = {"train_size": None, "test_size": None}
SUBSET_SEED = 0


def dataset_options(name: str) -> dict[str, Any]:
    """The kwargs data set ``name`` accepts beyond ``train_augment`` and ``download``, with their defaults."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    params = inspect.signature(DATASETS[name]).parameters.values()
    own = {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY}
    own.pop("train_augment")
    own.pop("download")
    return {**own, **SUBSET_OPTIONS}


def build_datasets(
    name: str, root: str | Path, *, train_augment: bool = True, download: bool = False, **kwargs: Any
) -> tuple[Dataset, Dataset, int]:
    """Return ``(train, test, num_classes)`` for data set ``name`` under ``root`` (see the module docstring).

    An unknown name or kwarg raises ``ValueError`` naming what is allowed; missing real data raises
    :class:`pws.data.DataMissingError`.
    """
    allowed = dataset_options(name)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for dataset {name!r}; allowed: {', '.join(allowed)}")
    train_size = kwargs.pop("train_size", None)
    test_size = kwargs.pop("test_size", None)
    train, test, num_classes = DATASETS[name](root, train_augment=train_augment, download=download, **kwargs)
    return _subset(train, train_size, "train_size"), _subset(test, test_size, "test_size"), num_classes


def _subset(dataset: Dataset, size: int | None, what: str) -> Dataset:
    if size is None:
        return dataset
    total = len(dataset)  # type: ignore[arg-type]
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= total:
        raise ValueError(f"{what} must be an integer in [1, {total}] (or None for all), got {size!r}")
    if size == total:
        return dataset
    generator = torch.Generator().manual_seed(SUBSET_SEED)
    indices = torch.randperm(total, generator=generator)[:size].sort().values.tolist()
    return Subset(dataset, indices)
