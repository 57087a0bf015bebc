"""The app end to end on the generated sets: training steps, the real mmdet metrics, metrics.json."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import pytest
import torch
from detection_stack import require_detection_stack

from .conftest import compose_detect

require_detection_stack()

from mmengine.runner.checkpoint import _load_checkpoint  # noqa: E402

from pws.detect import run  # noqa: E402
from pws.engine.checkpoints import mmengine_checkpoints  # noqa: E402
from pws.engine.errors import RunFailed  # noqa: E402
from pws.records.metrics_file import read_metrics, write_metrics  # noqa: E402

# 4 training images at batch 2, one epoch: 2 training iterations (the first is the FPS warm-up), then the
# evaluation of 2 test images through mmdet's VOCMetric / CocoMetric.
TINY = ["scale.detect.epochs=1", "data.batch_size=2", "data.num_train=4"]


def _run(tmp_path: Path, data_dir: Path, overrides: list[str], name: str = "run") -> dict:
    cfg = compose_detect([f"data.root={data_dir}", *TINY, *overrides])
    return run(cfg, tmp_path / name)


@pytest.mark.slow
def test_ssd_on_synthetic_voc(tmp_path: Path, data_dir: Path) -> None:
    record = _run(tmp_path, data_dir, ["data=synthetic_voc", "data.num_test=2", "norm=pws"])
    assert record["status"] == "finished", record.get("error")
    on_disk = read_metrics(tmp_path / "run")
    assert on_disk["status"] == "finished" and on_disk["task"] == "detect"
    # the record's mAP is mmdet's VOCMetric in %, and the last history row's
    assert on_disk["mAP"] == pytest.approx(100 * on_disk["evaluated"]["pascal_voc/mAP"])
    assert on_disk["history"][-1]["mAP"] == on_disk["mAP"]
    assert on_disk["train_fps"] > 0 and on_disk["train_fps_iters"] == 1
    assert on_disk["settings"]["milestones"] == [] and on_disk["history"][0]["epoch"] == 1
    assert on_disk["method"] == "pws" and on_disk["model"] == "ssd_vgg16" and on_disk["gamma"] == 1e-3
    assert (tmp_path / "run" / "epoch_1.pth").is_file()
    # the same command again is skipped: the run is done
    again = _run(tmp_path, data_dir, ["data=synthetic_voc", "data.num_test=2", "norm=pws"])
    assert again["wall_time_s"] == on_disk["wall_time_s"]
    # mmengine's own checkpoint loads under torch's weights-only default inside the documented context
    with mmengine_checkpoints():
        ckpt = _load_checkpoint(str(tmp_path / "run" / "epoch_1.pth"), map_location="cpu")
    assert {"state_dict", "optimizer", "message_hub", "param_schedulers"} <= set(ckpt)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(tmp_path / "run" / "epoch_1.pth", weights_only=True)


@pytest.mark.slow
def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path: Path, data_dir: Path) -> None:
    """Rerunning a run that stopped (metrics.json still says running) resumes at its last checkpoint."""
    # 2 training images: one iteration per epoch
    common = ["data=synthetic_voc", "data.num_test=2", "norm=bn", "data.num_train=2"]
    first = _run(tmp_path, data_dir, [*common, "scale.detect.epochs=1"])
    assert first["status"] == "finished"
    record = read_metrics(tmp_path / "run")
    record["status"] = "running"  # as if the job had been killed after its first epoch's checkpoint
    write_metrics(tmp_path / "run", record)
    resumed = _run(tmp_path, data_dir, [*common, "scale.detect.epochs=2"])
    assert resumed["status"] == "finished"
    # epoch 1 was not trained again, and the history keeps it (it travels in the checkpoint)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]
    assert resumed["history"][0] == first["history"][0]
    assert (tmp_path / "run" / "epoch_2.pth").is_file()


@pytest.mark.slow
def test_mask_rcnn_on_synthetic_coco(tmp_path: Path, data_dir: Path) -> None:
    record = _run(
        tmp_path,
        data_dir,
        [
            "model=mask_rcnn_r50_fpn",
            "data=synthetic_coco",
            "data.num_val=2",
            "schedule=mask_rcnn_1x",
            "norm=gn",
        ],
    )
    assert record["status"] == "finished", record.get("error")
    for key in ("bbox_mAP", "bbox_mAP_50", "bbox_mAP_75", "segm_mAP"):
        assert record[key] == pytest.approx(100 * record["evaluated"][f"coco/{key}"]), key
        assert record["history"][-1][key] == record[key], key
    assert "coco/segm_mAP" in record["evaluated"] and "mAP" not in record
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "finished"


@pytest.mark.slow
def test_forced_divergence_gives_diverged_and_nan(tmp_path: Path, data_dir: Path) -> None:
    record = _run(
        tmp_path,
        data_dir,
        [
            "data=synthetic_voc",
            "data.num_test=2",
            "norm=none",
            "optim.lr=1e12",
            "scale.detect.clip_grad_max_norm=null",
        ],
    )
    assert record["status"] == "diverged", record.get("error")
    assert math.isnan(record["mAP"])
    on_disk = read_metrics(tmp_path / "run")
    assert on_disk["status"] == "diverged" and math.isnan(on_disk["mAP"])
    assert "NaN" in (tmp_path / "run" / "metrics.json").read_text()


def test_a_metric_mmdet_did_not_report_is_nan_never_zero() -> None:
    """The record's metrics from mmdet's evaluation: fractions in %; a metric it did not report, or reported
    as missing (-1, pycocotools' value for no ground truth), is NaN, never 0."""
    from pws.detect.app import DETECT

    voc = DETECT.plan(compose_detect(["data=synthetic_voc"]), world_size=1)
    got = DETECT.summarize(voc, {"pascal_voc/mAP": 0.5625, "pascal_voc/AP50": 0.5625})
    assert set(got) == {"mAP", "f_measure"} and got["mAP"] == 56.25 and math.isnan(got["f_measure"])
    common = ["data=synthetic_coco", "model=mask_rcnn_r50_fpn", "schedule=mask_rcnn_1x"]
    coco = DETECT.plan(compose_detect(common), world_size=1)
    got = DETECT.summarize(coco, {"coco/bbox_mAP": 0.25, "coco/bbox_mAP_50": -1.0, "fmeasure/f_measure": 0.0})
    assert (got["bbox_mAP"], got["f_measure"]) == (25.0, 0.0)
    assert set(got) == {"bbox_mAP", "bbox_mAP_50", "bbox_mAP_75", "segm_mAP", "segm_mAP_50", "f_measure"}
    for key in ("bbox_mAP_50", "bbox_mAP_75", "segm_mAP", "segm_mAP_50"):
        assert math.isnan(got[key]), key


def test_missing_data_is_a_clear_error(tmp_path: Path) -> None:
    cfg = compose_detect(["data=voc0712", f"data.root={tmp_path / 'nowhere'}"])
    with pytest.raises(RunFailed, match="nowhere"):
        run(cfg, tmp_path / "run")
    record = read_metrics(tmp_path / "run")
    assert record["status"] == "failed" and "nowhere" in record["error"]


def test_malformed_annotation_names_the_file(tmp_path: Path) -> None:
    from pws.data.detection import synthetic_voc

    devkit = synthetic_voc.generate(tmp_path / "voc", num_train=2, num_test=2)
    xml = sorted((devkit / "VOC2007" / "Annotations").glob("*.xml"))[0]
    xml.write_text("<annotation><object><name>cat</name>")  # truncated
    cfg = compose_detect(["data=voc0712", f"data.root={devkit}"])
    with pytest.raises(RunFailed, match=xml.name):
        run(cfg, tmp_path / "run")


def test_full_scale_mask_rcnn_needs_a_backbone_checkpoint(tmp_path: Path) -> None:
    from pws.detect.app import DETECT
    from pws.engine.errors import ConfigError

    common = ["scale=full", "data=coco", "model=mask_rcnn_r50_fpn", "schedule=mask_rcnn_1x"]
    with pytest.raises(ConfigError, match=r"model.backbone_checkpoint=.*export_backbone"):
        DETECT.plan(compose_detect(common), world_size=1)
    checkpoint = tmp_path / "backbone.pth"
    plan = DETECT.plan(compose_detect([*common, f"model.backbone_checkpoint={checkpoint}"]), world_size=1)
    assert plan.settings.model_options["backbone_checkpoint"] == str(checkpoint)
    # the smoke scale trains it from scratch
    assert DETECT.plan(compose_detect(common[1:]), world_size=1).settings.model == "mask_rcnn_r50_fpn"
