"""The generators' class styles: distinct classes whose colour cue survives SSD's channel permutation, and
sets drawn from the first N classes only."""

from __future__ import annotations

import itertools
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pws.data.detection import synthetic_coco, synthetic_voc
from pws.data.detection._render import SHAPES, class_style


@pytest.mark.parametrize("num_classes", [2, 4, len(SHAPES), 20])
def test_class_styles_are_distinct_and_survive_channel_permutations(num_classes: int) -> None:
    styles = [class_style(k, num_classes) for k in range(num_classes)]
    assert len({(s.shape, frozenset(s.colours)) for s in styles}) == num_classes
    for k, style in enumerate(styles):
        for colour, order in itertools.product(style.colours, itertools.permutations(range(3))):
            permuted = tuple(colour[i] for i in order)
            owners = [j for j, s in enumerate(styles) if s.shape == style.shape and permuted in s.colours]
            assert owners == [k], (k, colour, order)  # a swapped colour still says the same class


def test_up_to_len_shapes_classes_are_told_by_shape_alone() -> None:
    assert [class_style(k, 4).shape for k in range(4)] == list(SHAPES[:4])
    assert len({class_style(k, 80) for k in range(80)}) == 80
    with pytest.raises(ValueError):
        class_style(4, 4)


def test_generated_sets_use_the_first_n_classes(tmp_path: Path) -> None:
    devkit = synthetic_voc.generate(tmp_path / "voc", num_train=8, num_test=4, object_classes=2)
    names = {
        o.findtext("name")
        for xml in devkit.rglob("Annotations/*.xml")
        for o in ET.parse(xml).getroot().iter("object")
    }
    assert names == set(synthetic_voc.VOC_CLASSES[:2])
    coco = synthetic_coco.generate(tmp_path / "coco", num_train=4, num_val=2, object_classes=3)
    doc = json.loads((coco / "annotations" / "instances_train2017.json").read_text())
    first3 = {c["id"] for c in doc["categories"][:3]}
    assert {a["category_id"] for a in doc["annotations"]} <= first3 and len(doc["categories"]) == 80
    with pytest.raises(ValueError, match="object_classes"):
        synthetic_voc.generate(tmp_path / "bad", num_train=2, num_test=2, object_classes=21)


def test_a_set_another_process_finished_meanwhile_is_used_not_replaced(tmp_path) -> None:
    """Two DDP ranks generate the same set at once: the one that finishes second must not delete the set
    the first one is already reading (its files are the same)."""
    from pws.data.detection._layout import build_once

    target = tmp_path / "set"
    params = {"generator": "test", "n": 1}

    def write(folder) -> None:
        (folder / "image.txt").write_text("pixels")

    def write_while_another_finishes(folder) -> None:
        write(folder)
        build_once(target, params, write)  # the other rank, done first
        (target / "opened-by-the-other-rank").write_text("")

    assert build_once(target, params, write_while_another_finishes) == target
    assert (target / "opened-by-the-other-rank").exists() and (target / "image.txt").read_text() == "pixels"
    assert [p.name for p in tmp_path.iterdir()] == ["set"]  # no temporary folder left
