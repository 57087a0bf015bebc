"""``data.on_device=true``: CIFAR-10's training set held on the run's device, augmented there per batch.

The CPU pipeline (:func:`pws.data.classification.cifar.cifar_transforms`) decodes, pads, crops, flips and
normalizes each image in the data-loader workers, then copies the batch to the device. Here, as the fastest
CIFAR trainers do, the whole training set is one ``uint8`` tensor ``(N, 3, 32, 32)`` on the device (150 MB
for CIFAR-10), and per batch:

* the training loader yields only the sampled indices (mmengine's ``DefaultSampler``, the same order as the
  CPU pipeline's; :func:`index_split`);
* the model's data preprocessor (:class:`OnDeviceCIFARPreprocessor`) gathers the images and labels of those
  indices on the device, applies the paper's augmentation ("the simple data augmentation in (Lee et al.
  2015)": 4-pixel zero padding, a random 32x32 crop, a random horizontal flip with probability 1/2;
  :func:`crop_flip`, one gather for the whole batch) and the per-channel normalization of the CPU
  pipeline (:func:`normalize`: ``(x / 255 - mean) / std``, the same float32 ops as ``ToTensor`` +
  ``Normalize``).

The random offsets and flips are drawn from the device's default generator, which the engine reseeds every
epoch and keeps in every checkpoint (:mod:`pws.engine.hooks.checkpoint_rng`): a run is deterministic under its
seed and resumes exactly. Evaluation is unchanged (the test split through the CPU pipeline). The time of the
augmentation is part of the training step that ``train_fps`` times.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import torch
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor
from mmengine.registry import DATASETS, MODELS
from torch import Tensor
from torch.utils.data import Dataset, Subset

from pws.classify.datasets import splits
from pws.data.classification.cifar import MEAN, STD

PADDING = 4  # Lee et al. (2015): 4-pixel zero padding, then a random crop of the original size


def crop_flip(
    images: Tensor, padding: int = PADDING, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Random ``padding``-pixel zero-padded crops of ``images`` (``(B, C, H, W)``, any dtype) at their size,
    each flipped left-right with probability 1/2, for the whole batch in one gather.

    Returns ``(out, top, left, flipped)``: the crops and, per image, the crop's offset in the padded image
    (uniform in ``0 .. 2 * padding``, as torchvision's ``RandomCrop(size, padding)``) and whether it was
    flipped (as ``RandomHorizontalFlip()``).
    """
    b, c, h, w = images.shape
    device = images.device
    span = 2 * padding + 1
    top = torch.randint(0, span, (b,), device=device, generator=generator)
    left = torch.randint(0, span, (b,), device=device, generator=generator)
    flipped = torch.rand(b, device=device, generator=generator) < 0.5
    padded = F.pad(images, (padding, padding, padding, padding))  # zeros
    rows = top[:, None] + torch.arange(h, device=device)  # (B, H)
    cols = left[:, None] + torch.arange(w, device=device)  # (B, W)
    cols = torch.where(flipped[:, None], cols.flip(1), cols)  # a flipped crop reads its columns backwards
    batch = torch.arange(b, device=device)[:, None, None, None]
    channel = torch.arange(c, device=device)[None, :, None, None]
    out = padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]
    return out, top, left, flipped


def normalize(images: Tensor, mean: tuple[float, ...] = MEAN, std: tuple[float, ...] = STD) -> Tensor:
    """``uint8`` images ``(B, C, H, W)`` as the CPU pipeline's ``ToTensor`` + ``Normalize(mean, std)`` give
    them: float32 ``(x / 255 - mean_c) / std_c``."""
    x = images.to(torch.float32).div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32, device=x.device)[None, :, None, None]
    s = torch.tensor(std, dtype=torch.float32, device=x.device)[None, :, None, None]
    return x.sub_(m).div_(s)


def raw_training_set(dataset: Dataset) -> tuple[Tensor, Tensor]:
    """``(images uint8 (N, 3, 32, 32), labels int64 (N,))`` of a torchvision CIFAR10 training set (or a
    ``Subset`` of one: ``data.train_size``), in the dataset's index order."""
    indices = None
    while isinstance(dataset, Subset):
        indices = torch.as_tensor(dataset.indices) if indices is None else torch.as_tensor(dataset.indices)[
            indices]
        dataset = dataset.dataset
    data, targets = getattr(dataset, "data", None), getattr(dataset, "targets", None)
    if data is None or targets is None:
        raise TypeError(f"data.on_device needs a CIFAR10-style data set (.data, .targets): {type(dataset)}")
    images = torch.from_numpy(data).permute(0, 3, 1, 2).contiguous()  # HWC -> CHW, uint8
    labels = torch.as_tensor(targets, dtype=torch.int64)
    if indices is not None:
        images, labels = images[indices], labels[indices]
    return images, labels


@functools.lru_cache(maxsize=2)
def _on_device(key: str, device: str) -> tuple[Tensor, Tensor]:
    options = json.loads(key)
    train, _, _ = splits(options.pop("name"), options.pop("root"), **options)
    images, labels = raw_training_set(train)
    return images.to(device), labels.to(device)


class _Indices(Dataset):
    """The indices ``0 .. n - 1`` of a training set, as its samples (the images stay on the device)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


@DATASETS.register_module(name="ClassificationIndices", force=True)
def index_split(name: str, root: str, **options: Any) -> Dataset:
    """The training split of ``name`` as its indices (what the device preprocessor gathers)."""
    train, _, _ = splits(name, root, **options)
    return _Indices(len(train))  # type: ignore[arg-type]


@MODELS.register_module(name="OnDeviceCIFARPreprocessor", force=True)
class OnDeviceCIFARPreprocessor(BaseDataPreprocessor):
    """The model's data preprocessor for ``data.on_device``: a training batch of indices becomes the
    augmented, normalized images and their labels on the model's device; an evaluation batch (images and
    labels from the CPU pipeline) is moved there as by mmengine's ``BaseDataPreprocessor``.

    ``data``: the data set's options as :func:`pws.classify.datasets.splits` takes them (``name``,
    ``root``, ``train_augment``, ...). The device copy of the training set is built on the first batch and
    shared by every preprocessor of the process on that device (an EMA copy of the model does not copy it).
    """

    def __init__(self, data: dict[str, Any], non_blocking: bool = False) -> None:
        super().__init__(non_blocking=non_blocking)
        self.key = json.dumps(data, sort_keys=True)
        self.augment = bool(data.get("train_augment", True))

    def training_set(self) -> tuple[Tensor, Tensor]:
        """The device copy of the training set: ``(images uint8 (N, 3, 32, 32), labels (N,))``."""
        return _on_device(self.key, str(self.device))

    def forward(self, data: Any, training: bool = False) -> Any:
        if not training:
            return super().forward(data, training)
        images, labels = self.training_set()
        index = torch.as_tensor(data).to(self.device, non_blocking=self._non_blocking)
        batch = images.index_select(0, index)
        if self.augment:
            batch = crop_flip(batch)[0]
        return [normalize(batch), labels.index_select(0, index)]
