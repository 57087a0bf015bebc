"""The rehearsal's parts that run no app: a cell's overrides (its length, its data: the user's or a stand-in),
its row from a run's record (status, speed, memory, device-hours) and the table the plan reads."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from PIL import Image

from pws.data.real_sizes import REAL_SIZES
from pws.engine.compose import compose_config
from pws.engine.schema import check_known_keys
from pws.paper.experiments import load_table
from pws.results.cost import Kind
from pws.results.rehearsal import (
    COLUMNS,
    Options,
    composed,
    data_overrides,
    from_record,
    length_overrides,
    write_table,
)
from pws.results.reproduce import merge_overrides

SSD = Kind("detect", "ssd_vgg16", "pws", 320, 8)


def cell_overrides(table: str, cell: str, *more: str) -> list[str]:
    (found,) = [c for c in load_table(table).cells("full", None) if c.id == cell]
    return merge_overrides([*found.overrides, *more])


def finished(**more) -> dict:
    return {"status": "finished", "train_fps": 4.0, "peak_memory_mb": 1700.0,
            "train_device": "cpu, 2 threads", "train_fps_iters": 3, "evaluated": {"pascal_voc/mAP": 0.0},
            "history": [{"epoch": 1, "train_loss": 21.5}], **more}  # fmt: skip


def test_a_finished_run_is_ok_with_its_speed_memory_and_hours() -> None:
    row = from_record("bs8/pws", finished(), None, SSD, 8, images_per_seed=240 * 16_551)
    assert row.ok and row.status == "ok"
    assert row.seconds_per_iter == 2.0 and row.images_per_s == 4.0 and row.peak_memory_mb == 1700.0
    assert math.isclose(row.device_hours, 240 * 16_551 / 4.0 / 3600)
    assert (row.device, row.train_loss, row.timed_iters) == ("cpu, 2 threads", 21.5, 3)


@pytest.mark.parametrize(("record", "error", "status"), [
    (finished(status="failed", error="RuntimeError: shapes\nmismatch: 19 vs 20"), None,
     "RuntimeError: mismatch: 19 vs 20"),
    (finished(status="failed", error="data missing: no VOC2007"), None,
     "RunFailed: data missing: no VOC2007"),
    (finished(status="failed", error="invalid configuration: model.input_size must be > 0"), None,
     "ConfigError: model.input_size must be > 0"),
    (finished(status="diverged", error="loss is nan at iteration 1"), None,
     "diverged: loss is nan at iteration 1"),
    (finished(history=[{"epoch": 1, "train_loss": math.inf}]), None, "NonFiniteLoss: train_loss inf"),
    (finished(evaluated={}), None, "NoEvaluation: the evaluation gave no metric"),
    ({}, "ModuleNotFoundError: No module named 'mmdet'", "ModuleNotFoundError: No module named 'mmdet'"),
    ({}, "app pws.detect is not available", "LaunchFailed: app pws.detect is not available"),
    ({}, None, "NoRecord: the launch wrote no metrics.json"),
])  # fmt: skip
def test_a_failed_cell_says_its_class_and_last_line(record: dict, error: str | None, status: str) -> None:
    row = from_record("bs8/pws", record, error, SSD, 8, images_per_seed=1)
    assert not row.ok and row.status == status


def test_missing_data_gets_a_full_size_stand_in_in_the_real_format(tmp_path: Path) -> None:
    base = cell_overrides("table1", "bs2/pws", f"data_root={tmp_path / 'nothing'}")
    options = Options(iters=3, eval_images=2)
    overrides, notes = data_overrides(composed("detect", base), options, 2, tmp_path / "standins")
    assert "data=synthetic_voc" in overrides and "++data.num_classes=20" in overrides  # VOC's 20 classes
    assert "++data.num_train=8" in overrides and "++data.num_test=2" in overrides
    assert notes == [f"generated synthetic_voc ({tmp_path / 'nothing' / 'VOCdevkit'} is not there)"]
    imagenet = cell_overrides("table5", "pws", f"data_root={tmp_path / 'nothing'}")
    overrides, _ = data_overrides(composed("classify", imagenet), options, 64, tmp_path / "standins")
    want = {"data=synthetic_imagenet", "++data.num_classes=1000", "++data.num_train=1000"}
    assert want <= set(overrides)


def test_the_stand_ins_pass_the_apps_checks_and_are_generated_at_the_real_sizes(tmp_path: Path) -> None:
    """The stand-in's overrides are keys the apps know, and they reach the generators: the detection app
    writes COCO at its real sizes with its quirks; the classification plan asks ImageNet's for both."""
    from pws.classify.config import make_plan
    from pws.detect.app import checked_plan, prepare_data

    options = Options(iters=1, eval_images=2)
    nothing = f"data_root={tmp_path / 'nothing'}"
    base = cell_overrides("table3", "mask_rcnn/1x/pws", nothing)
    overrides, _ = data_overrides(composed("detect", base), options, 1, tmp_path / "standins")
    assert {"++data.quirks=True", "++data.real_sizes=True"} <= set(overrides)
    check_known_keys("detect", overrides)
    cfg = compose_config("detect", [*base, *overrides])
    coco = prepare_data(cfg.data, checked_plan(cfg, 1).settings, tmp_path)
    sizes = [Image.open(p).size for p in sorted(coco.glob("*2017/*.jpg"))]
    assert set(sizes) <= set(REAL_SIZES["coco"]) and len(set(sizes)) == 2  # 640x480 and 480x640
    assert json.loads((coco / ".pws_synthetic.json").read_text())["quirks"] is True
    base = cell_overrides("table5", "pws", nothing)
    overrides, _ = data_overrides(composed("classify", base), options, 64, tmp_path / "standins")
    check_known_keys("classify", overrides)
    plan = make_plan(compose_config("classify", [*base, *overrides]), 1)
    assert plan.data_kwargs["real_sizes"] is True and plan.data_kwargs["quirks"] is True


def test_the_users_data_is_used_where_it_is(tmp_path: Path) -> None:
    (tmp_path / "VOCdevkit").mkdir()
    base = cell_overrides("table1", "bs2/pws", f"data_root={tmp_path}")
    assert data_overrides(composed("detect", base), Options(), 2, tmp_path / "standins") == ([], [])


def test_the_length_overrides_reach_the_apps_plans(tmp_path: Path) -> None:
    from pws.classify.config import make_plan
    from pws.detect.app import checked_plan

    options = Options(iters=4, eval_images=3)
    plan = make_plan(compose_config("classify", [*cell_overrides("table4", "plain/lr0.1/pws"),
                                              *length_overrides("classify", options, 128)]), 1)  # fmt: skip
    assert (plan.schedule.epochs, plan.max_steps_per_epoch, plan.fps_warmup_iters) == (1, 4, 2)
    assert plan.data_kwargs["test_size"] == 3 and plan.batch_size == 128  # the cell's batch unchanged
    detect = [*cell_overrides("table3", "ssd/1x/pws"), *length_overrides("detect", options, 16)]
    settings = checked_plan(compose_config("detect", detect), 1).settings
    assert (settings.schedule.epochs, settings.train_size, settings.test_size) == (1, 64, 3)
    assert (settings.fps_warmup_iters, settings.val_interval, settings.batch_size) == (2, 1, 16)
    assert settings.input_size == 320 and settings.model_options["width"] == 1.0  # full size


def test_the_table_has_the_columns_and_says_what_failed(tmp_path: Path) -> None:
    ok = from_record("bs8/pws", finished(), None, SSD, 8, images_per_seed=100)
    bad = from_record("bs8/bn", finished(status="failed", error="RuntimeError: boom"), None, SSD, 8, 1)
    paths = write_table("table1", [ok, bad], tmp_path, Options())
    assert paths["csv"] == tmp_path / "rehearsal" / "table1.csv"
    with open(paths["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0])[: len(COLUMNS)] == COLUMNS
    assert [(r["cell"], r["status"]) for r in rows] == [("bs8/pws", "ok"), ("bs8/bn", "RuntimeError: boom")]
    assert "**1 of 2 cells failed.**" in paths["md"].read_text()


def test_measure_rehearses_one_cell_of_each_kind_and_returns_its_speed(tmp_path: Path, monkeypatch) -> None:
    from pws.results import rehearsal

    asked = []

    def fake(table: str, options: Options, *, cells: list[str], extra_overrides=None) -> list:
        asked.extend(cells)
        return [from_record(c, finished(), None, Kind("classify", c.split("/")[0], "pws", 32, 128), 128, 1)
                for c in cells]  # fmt: skip

    monkeypatch.setattr(rehearsal, "rehearse", fake)
    cells = ["plain/lr0.1/pws", "plain/lr0.05/pws", "plain/lr0.1/bn", "residual/lr0.1/pws"]
    got = rehearsal.measure(load_table("table4"), Options(), "full", cells=cells, out_root=tmp_path)
    # the LR does not change a kind: one rehearsal for plain + PWS, one for plain + BN, one for the ResNet
    assert sorted(asked) == ["plain/lr0.1/bn", "plain/lr0.1/pws", "residual/lr0.1/pws"]
    assert {t.images_per_s for t in got} == {4.0} and len(got) == 3
    assert (tmp_path / "rehearsal" / "table4_kinds.csv").is_file()
    with pytest.raises(ValueError, match="full-scale"):
        rehearsal.measure(load_table("table4"), Options(), "smoke")
