"""ImageNet (ILSVRC2012) from the usual folder layout, and a generated stand-in in the same layout.

Layout: ``root/train/<wnid>/*.JPEG`` and ``root/val/<wnid>/*.JPEG`` (the 50,000 validation images sorted
into their class folders), read with torchvision's :class:`~torchvision.datasets.ImageFolder`; class indices
follow the sorted folder names. Transforms as in the paper ("the same data augmentation strategy in
ResNet-50", the authors' code likewise): training ``RandomResizedCrop(crop_size)`` + horizontal flip, test
``Resize(resize_size)`` + ``CenterCrop(crop_size)`` (224 and 256 at full scale), then normalization with the
ImageNet channel statistics.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torchvision.transforms as T
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

from pws.data.census import Census
from pws.data.classification.synthetic import (
    MARKER,
    make_temp_dir,
    pattern_images,
    publish,
    read_marker,
    write_marker,
)
from pws.data.errors import DataMissingError, MalformedFile
from pws.data.quirks import QUIRKS, save_image
from pws.data.real_sizes import marker_entry, real_size

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SPLITS = ("train", "val")
HOW_TO_GET = (
    "ImageNet is not downloaded automatically (its license needs a login): get the ILSVRC2012 training and "
    "validation archives from https://image-net.org/download-images and extract them to {root}/train/<wnid>/"
    "*.JPEG and {root}/val/<wnid>/*.JPEG (sort the validation images into class folders, e.g. with the "
    "widely used valprep.sh); data=synthetic_imagenet generates a small stand-in in the same layout"
)


def imagenet_transforms(
    train_augment: bool, crop_size: int = 224, resize_size: int = 256
) -> tuple[T.Compose, T.Compose]:
    """(train, test) transforms; without ``train_augment`` training uses the test transform."""
    normalize = [T.ToTensor(), T.Normalize(MEAN, STD)]
    test = T.Compose([T.Resize(resize_size), T.CenterCrop(crop_size), *normalize])
    if not train_augment:
        return test, test
    return T.Compose([T.RandomResizedCrop(crop_size), T.RandomHorizontalFlip(), *normalize]), test


def imagenet(
    root: str | Path,
    *,
    train_augment: bool = True,
    download: bool = False,
    crop_size: int = 224,
    resize_size: int = 256,
) -> tuple[Dataset, Dataset, int]:
    """ImageNet from ``root/train`` and ``root/val``; ``num_classes`` is the number of class folders (1000).

    kwargs: ``crop_size`` (224), ``resize_size`` (256, test only). ``download`` cannot be honoured (no
    public download): a missing folder always raises :class:`pws.data.DataMissingError`.
    """
    del download
    return image_folders(root, "ImageNet", train_augment, crop_size, resize_size)


def image_folders(
    root: str | Path, what: str, train_augment: bool, crop_size: int, resize_size: int
) -> tuple[Dataset, Dataset, int]:
    """``ImageFolder`` datasets of ``root/train`` and ``root/val`` with the ImageNet transforms."""
    root = Path(root)
    how = HOW_TO_GET.format(root=root)
    if crop_size < 1 or resize_size < crop_size:
        raise ValueError(
            f"need 1 <= crop_size <= resize_size, got crop_size={crop_size}, resize_size={resize_size}"
        )
    for split in SPLITS:
        if not (root / split).is_dir():
            raise DataMissingError(f"{what} {split} folder", root / split, how)
    train_tf, test_tf = imagenet_transforms(train_augment, crop_size, resize_size)
    datasets = []
    for split, tf in zip(SPLITS, (train_tf, test_tf), strict=True):
        try:
            datasets.append(ImageFolder(str(root / split), transform=tf))
        except FileNotFoundError as err:  # no class folders, or no image files in them
            raise DataMissingError(f"{what} {split} images ({err})", root / split, how) from err
    train, test = datasets
    if train.classes != test.classes:
        raise ValueError(
            f"{root}/train and {root}/val have different class folders "
            f"({len(train.classes)} and {len(test.classes)}); both need the same <wnid> folders"
        )
    return train, test, len(train.classes)


# --------------------------------------------------------------------------------------------------------
# Checks and counts


def class_images(root: Path, split: str) -> dict[str, list[str]]:
    """The image files (names with one of ImageFolder's extensions) of each class folder of ``root/split``;
    :class:`~pws.data.DataMissingError` when the folder is not there."""
    folder = root / split
    if not folder.is_dir():
        raise DataMissingError(f"ImageNet {split} folder", folder, HOW_TO_GET.format(root=root))
    return {
        entry.name: [f.name for f in os.scandir(entry.path) if f.name.lower().endswith(IMG_EXTENSIONS)]
        for entry in os.scandir(folder)
        if entry.is_dir() and not entry.name.startswith(".")
    }


def census_imagenet(root: Path) -> Census:
    """The images of ``root/train`` and ``root/val`` counted (files, not decoded), the classes (folders of
    ``train``) and the generator's marker (``synthetic.json`` in a split folder) if any."""
    root = Path(root)
    found = {split: class_images(root, split) for split in SPLITS}
    counts = {split: sum(map(len, found[split].values())) for split in SPLITS}
    markers = [root / split / MARKER for split in SPLITS if (root / split / MARKER).is_file()]
    return Census("imagenet", root, {**counts, "classes": len(found["train"])}, (markers or [None])[0])


def check_imagenet(root: Path) -> Path:
    """The ImageNet layout at ``root`` checked as ImageFolder reads it: ``train`` and ``val`` have the same
    class folders, none without images, and every image file opens as an image (its header: JPEG, PNG, ...;
    the real training set has a PNG and CMYK JPEGs among its ``.JPEG`` files). Returns ``root``; the first
    problem raises, naming its file or folder."""
    root = Path(root)
    found = {split: class_images(root, split) for split in SPLITS}
    train, val = (set(found[split]) for split in SPLITS)
    if train != val:
        odd = sorted(train ^ val)
        raise MalformedFile(root / "val", f"train/ and val/ need the same class folders; {len(odd)} in one "
                                          f"only: {', '.join(odd[:5])}")  # fmt: skip
    for split in SPLITS:
        for wnid, names in sorted(found[split].items()):
            if not names:
                raise MalformedFile(root / split / wnid, f"no image files ({', '.join(IMG_EXTENSIONS)})")
            for name in names:
                path = root / split / wnid / name
                try:
                    with Image.open(path):
                        pass
                except (UnidentifiedImageError, OSError) as e:
                    raise MalformedFile(path, f"not an image PIL can open ({e})") from e
    return root


# --------------------------------------------------------------------------------------------------------
# Generated stand-in


def synthetic_imagenet(
    root: str | Path,
    *,
    train_augment: bool = True,
    download: bool = False,
    num_classes: int = 10,
    num_train: int = 200,
    num_val: int = 50,
    image_size: int = 80,
    crop_size: int = 224,
    resize_size: int = 256,
    seed: int = 0,
    quirks: bool = False,
    real_sizes: bool = False,
) -> tuple[Dataset, Dataset, int]:
    """A small generated ImageNet in the real layout (JPEG files), written under ``root`` if absent.

    kwargs: ``num_classes`` (10), ``num_train`` (200) and ``num_val`` (50) images spread evenly over the
    classes (each needs >= ``num_classes``), ``image_size`` (80: the generated JPEGs are about this size,
    with random aspect ratios between 3:4 and 4:3 of it), ``crop_size`` (224) and ``resize_size`` (256) as for
    :func:`imagenet` (lower them, e.g. 64/73, for fast CPU runs), ``seed`` (0), ``quirks`` and ``real_sizes``
    (False) as for :func:`generate_synthetic_imagenet`. Same options reuse the files, others regenerate them;
    ``download`` is ignored. Then it loads exactly as :func:`imagenet` does.
    """
    del download
    generate_synthetic_imagenet(
        root, num_classes=num_classes, num_train=num_train, num_val=num_val, image_size=image_size, seed=seed,
        quirks=quirks, real_sizes=real_sizes,
    )  # fmt: skip
    return image_folders(root, "synthetic ImageNet", train_augment, crop_size, resize_size)


def generate_synthetic_imagenet(
    root: str | Path,
    *,
    num_train: int = 200,
    num_val: int = 50,
    num_classes: int = 10,
    image_size: int = 80,
    seed: int = 0,
    quirks: bool = False,
    real_sizes: bool = False,
) -> Path:
    """Write ``root/train/<wnid>/<wnid>_<k>.JPEG``, ``root/val/<wnid>/ILSVRC2012_val_<k>.JPEG``; return root.

    Class folders are named like WordNet ids (``n00000000``, ``n00000001``, ...); the images of a split are
    spread evenly over them. ``quirks``: the first training images are a greyscale JPEG, a CMYK JPEG and a
    PNG named ``.JPEG``, as the real training set has (:mod:`pws.data.quirks`; needs ``num_train >= 3``).
    ``real_sizes``: ImageNet's varied sizes (:mod:`pws.data.real_sizes`: 500x375, 375x500, ... in turn)
    instead of about ``image_size``.
    Each split folder is published atomically with its ``synthetic.json``; a ``train``/``val`` folder
    without one is never replaced (``FileExistsError``).
    """
    counts = {"train": int(num_train), "val": int(num_val)}
    if num_classes < 1 or min(counts.values()) < num_classes or image_size < 8 or (quirks and num_train < 3):
        raise ValueError(
            "synthetic_imagenet needs num_classes >= 1, num_train and num_val >= num_classes (and num_train "
            f">= 3 with quirks) and image_size >= 8, got num_classes={num_classes}, num_train={num_train}, "
            f"num_val={num_val}, image_size={image_size}"
        )
    root = Path(root)
    for split in SPLITS:
        options = {"dataset": "synthetic_imagenet", "split": split, "num_images": counts[split],
                   "num_classes": int(num_classes), "image_size": int(image_size), "seed": int(seed),
                   "quirks": bool(quirks), **marker_entry(real_sizes)}
        folder = root / split
        marker = read_marker(folder)
        if marker == options:
            continue
        if folder.exists() and marker is None:
            raise FileExistsError(
                f"{folder} exists and was not generated by synthetic_imagenet (no synthetic.json): it may be "
                "the real ImageNet. Give synthetic_imagenet a root of its own."
            )
        rng = np.random.default_rng([seed, SPLITS.index(split)])
        tmp = make_temp_dir(folder)
        wnids = [f"n{c:08d}" for c in range(num_classes)]
        for wnid in wnids:
            (tmp / wnid).mkdir()
        for index, c in enumerate(np.sort(np.arange(counts[split]) % num_classes)):
            height, width = (int(v) for v in rng.integers(image_size * 3 // 4, image_size * 5 // 4 + 1, 2))
            if real_sizes:
                width, height = real_size("imagenet", index)
            pixels = pattern_images(np.array([c]), num_classes, height, width, rng)[0]
            name = f"{wnids[c]}_{index}.JPEG" if split == "train" else f"ILSVRC2012_val_{index + 1:08d}.JPEG"
            quirk = QUIRKS[index] if quirks and split == "train" and index < len(QUIRKS) else None
            save_image(pixels, tmp / wnids[c] / name, quirk)
        write_marker(tmp, options)
        publish(tmp, folder, options)
    return root
