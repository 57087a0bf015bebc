"""scikit-learn's handwritten digits as a small real image classification set a CPU learns in minutes.

``sklearn.datasets.load_digits`` ships with scikit-learn (no download): 1,797 real 8x8 grey images of the
digits 0-9 (values 0..16; UCI "Optical Recognition of Handwritten Digits", 43 writers). We scale them to
[0, 1], upsample them bilinearly to ``image_size`` x ``image_size`` (32 by default, the CIFAR input size of
``plain_c`` and ``resnet_cifar``), repeat the grey channel to RGB and normalize with the mean and standard
deviation of the training images. The train/test split is stratified and fixed (``test_fraction`` = 0.2:
1,437 training and 360 test images, every class in both); it depends on ``seed`` only, which is 0 unless
given, so runs with different training seeds share one test set.

Training augmentation (``train_augment``): a random shift of up to 4 pixels (4-pixel zero padding and a
random crop, the CIFAR recipe without its horizontal flip, which would turn digits into other shapes). The
random numbers come from torch's global generator, so a seeded run draws the same crops again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import Tensor
from torch.utils.data import Dataset

NUM_CLASSES = 10
PAD = 4


class ImageTensorDataset(Dataset):
    """In-memory grey images ``(N, 1, H, W)`` in [0, 1] served as normalized ``(3, H, W)`` float tensors.

    ``pad > 0`` gives a random shift of up to ``pad`` pixels per sample (zero padding + random crop).
    ``targets`` lists the labels as ints.
    """

    def __init__(self, images: Tensor, labels: Tensor, mean: float, std: float, pad: int = 0) -> None:
        self.size = tuple(images.shape[-2:])
        self.images = F.pad(images, (pad, pad, pad, pad)) if pad else images
        self.labels = labels
        self.targets = [int(v) for v in labels]
        self.mean, self.std, self.pad = float(mean), float(std), int(pad)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        x = self.images[index]
        if self.pad:
            dy, dx = torch.randint(0, 2 * self.pad + 1, (2,)).tolist()
            x = x[:, dy : dy + self.size[0], dx : dx + self.size[1]]
        x = (x - self.mean) / self.std
        return x.expand(3, -1, -1), self.targets[index]


def digits(
    root: str | Path | None = None,
    *,
    train_augment: bool = True,
    download: bool = False,
    image_size: int = 32,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[Dataset, Dataset, int]:
    """The digits as (train, test, 10); ``root`` and ``download`` are ignored (the data ship with sklearn).

    kwargs: ``image_size`` (32), ``test_fraction`` (0.2), ``seed`` (0, the split's seed).
    """
    del root, download
    if image_size < 8:
        raise ValueError(f"digits image_size must be >= 8 (the originals are 8x8), got {image_size}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"digits test_fraction must be in (0, 1), got {test_fraction}")
    bunch = load_digits()
    images = bunch.images.astype(np.float32) / 16.0  # (1797, 8, 8)
    labels = bunch.target.astype(np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, stratify=labels, random_state=seed
    )
    upsampled = F.interpolate(
        torch.from_numpy(images)[:, None], size=(image_size, image_size), mode="bilinear", align_corners=False
    ).clamp_(0.0, 1.0)
    train_images = upsampled[torch.from_numpy(train_idx)]
    mean, std = train_images.mean().item(), train_images.std().item()
    train = ImageTensorDataset(
        train_images, torch.from_numpy(labels[train_idx]), mean, std, pad=PAD if train_augment else 0
    )
    test = ImageTensorDataset(
        upsampled[torch.from_numpy(test_idx)], torch.from_numpy(labels[test_idx]), mean, std
    )
    return train, test, NUM_CLASSES
