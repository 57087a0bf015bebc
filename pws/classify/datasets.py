"""The classification data sets as the Runner's datasets (``ClassificationSplit``): one split of
:func:`pws.data.classification.build_datasets`, built once per process and shared by both splits."""

from __future__ import annotations

import functools
import json
from typing import Any

from mmengine.registry import DATASETS
from torch.utils.data import Dataset

from pws.data.classification import build_datasets


@functools.lru_cache(maxsize=4)
def _both_splits(key: str) -> tuple[Dataset, Dataset, int]:
    options = json.loads(key)
    return build_datasets(options.pop("name"), options.pop("root"), **options)


def splits(name: str, root: str, **options: Any) -> tuple[Dataset, Dataset, int]:
    """``(train, test, num_classes)`` of ``name`` (cached: the two splits and the app share one build)."""
    return _both_splits(json.dumps({"name": name, "root": str(root), **options}, sort_keys=True))


@DATASETS.register_module(name="ClassificationSplit", force=True)
def classification_split(split: str, name: str, root: str, **options: Any) -> Dataset:
    """The ``train`` or ``test`` split of data set ``name`` (options: see ``build_datasets``)."""
    train, test, _ = splits(name, root, **options)
    return {"train": train, "test": test}[split]
