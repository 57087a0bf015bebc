"""Fixtures of the data tests: the generated VOC and COCO sets, written once per session (per worker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pws.data.detection import synthetic_coco, synthetic_voc

VOC_ARGS = {"num_train": 6, "num_test": 4, "seed": 0}
COCO_ARGS = {"num_train": 4, "num_val": 4, "seed": 0}


@pytest.fixture(scope="session")
def voc_devkit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated VOCdevkit (VOC2007 trainval 3 + test 4, VOC2012 trainval 3); tests must not modify it."""
    return synthetic_voc.generate(tmp_path_factory.mktemp("voc"), **VOC_ARGS)


@pytest.fixture(scope="session")
def coco_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated COCO 2017 root (train2017 4, val2017 4); tests must not modify it."""
    return synthetic_coco.generate(tmp_path_factory.mktemp("coco"), **COCO_ARGS)


@pytest.fixture(scope="session")
def voc_args() -> dict:
    return dict(VOC_ARGS)


@pytest.fixture(scope="session")
def coco_args() -> dict:
    return dict(COCO_ARGS)
