"""One rehearsal cell of every model kind at full size on the CPU, through the table driver's launch and the
app (generated stand-ins at the real formats: no data on this machine), one training iteration and one
evaluation over one test image each; and a broken full-size config that the rehearsal reports as failed.

Where the cell's batch costs more than a CI allows on 2 cores, the rehearsal runs at a smaller per-process
batch and its note says so (the model, input size, width and evaluator stay the full scale's)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from pws.engine.compose import compose_config
from pws.paper.experiments import REPO_ROOT, load_table
from pws.results.rehearsal import Options, rehearse

pytestmark = pytest.mark.slow

# (table, cell, per-process batch instead of the cell's), the smallest each config permits
CELLS = [
    ("table1", "bs2/pws", 1),                          # SSD320-VGG16 (the cell: 2)
    ("table2", "lr1e-2/r50/pws/gamma1e-3", 1),         # SSD320-ResNet-50 (the cell: 16)
    ("table3", "mask_rcnn/1x/pws", 1),                 # Mask R-CNN R50-FPN at 1333x800 (the cell: 4)
    ("table4", "plain/lr0.1/pws", 4),                  # ConvPool-CNN-C (the cell: 128)
    ("table4", "residual/lr0.1/pws", 4),               # the CIFAR ResNet, depth 56 (the cell: 128)
    ("table5", "pws", 2),                              # ResNet-50 at 224 (the cell: 64)
]  # fmt: skip


@pytest.fixture
def standins(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated stand-ins, kept in pytest's cache where there is one: made once (ImageNet's 2,000 JPEGs
    take a minute)."""
    cache = getattr(request.config, "cache", None)
    return cache.mkdir("rehearsal-standins") if cache is not None else tmp_path_factory.mktemp("standins")


def options(tmp_path: Path, batch: int | None, standins: Path) -> Options:
    return Options(iters=1, eval_images=1, batch=batch, data_root=str(tmp_path / "data"),
                   runs_root=str(tmp_path / "runs"), standins=str(standins), device="cpu")  # fmt: skip


def full_size(table: str, cell: str, record: dict) -> tuple[dict, dict]:
    """(what the rehearsal's run built, what the cell's full-scale config builds): network and input."""
    (found,) = [c for c in load_table(table).cells("full", None) if c.id == cell]
    if found.app == "pws.classify":
        from pws.classify.config import make_plan

        plan = make_plan(compose_config("classify", found.overrides), 1)
        norm = {"method": plan.method.method, **plan.method.options}
        want = {"model_kwargs": plan.model_kwargs, "norm": norm, "crop": plan.data_kwargs.get("crop_size")}
        got = record["plan"]
        return {"model_kwargs": got["model_kwargs"], "norm": got["norm"],
                "crop": got["data_kwargs"].get("crop_size")}, want  # fmt: skip
    from pws.detect.app import checked_plan

    settings = checked_plan(compose_config("detect", found.overrides), 1).settings.as_record()
    keys = ("model", "input_size", "method", "num_classes", "data_format")
    got = record["settings"]
    return (
        {k: got[k] for k in keys} | model_options(got),
        {k: settings[k] for k in keys} | model_options(settings),
    )


def model_options(settings: dict) -> dict:
    return {k: v for k, v in settings["model_options"].items() if k != "backbone_checkpoint"}


@pytest.mark.parametrize(("table", "cell", "batch"), CELLS, ids=[f"{t}:{c}" for t, c, _ in CELLS])
def test_a_full_size_cell_rehearses_on_the_cpu(table: str, cell: str, batch: int, tmp_path: Path,
                                               standins: Path) -> None:  # fmt: skip
    (row,) = rehearse(table, options(tmp_path, batch, standins), cells=[cell], printer=lambda _: None)
    assert row.status == "ok", f"{row.status} (run {row.run_dir})"
    assert math.isfinite(row.train_loss) and row.timed_iters >= 1 and row.images_per_s > 0
    assert row.peak_memory_mb > 200 and row.device.startswith("cpu")  # the training process' peak RSS
    assert math.isfinite(row.device_hours) and row.device_hours > 0
    record = json.loads((Path(row.run_dir) / "metrics.json").read_text())
    got, want = full_size(table, cell, record)
    assert got == json.loads(json.dumps(want))  # the full scale's network, width and input (JSON's types)
    assert record["data"].startswith("synthetic_") and "generated" in row.note  # no real data here
    assert f"batch {batch} per process instead of the cell's" in row.note
    if table == "table3":
        assert "random backbone" in row.note


def test_a_broken_full_size_config_fails_the_rehearsal(tmp_path: Path, monkeypatch, capsys) -> None:
    """SSD320 given a 100-pixel input (a wrong input size): the cell fails, named; the exit status is 1."""
    monkeypatch.syspath_prepend(str(REPO_ROOT / "scripts"))
    import reproduce_table as cli

    out = tmp_path / "results"
    code = cli.main(["table1", "--scale", "full", "--rehearse", "--cells", "bs2/pws", "--iters", "1",
                     "--eval-images", "1", "--data-root", str(tmp_path / "data"), "--device", "cpu",
                     "--runs", str(tmp_path / "runs"), "--out", str(out),
                     "--override", "model.input_size=100"])  # fmt: skip
    with open(out / "rehearsal" / "table1.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert code == 1 and row["cell"] == "bs2/pws" and row["status"] != "ok"
    assert row["status"].startswith("ValueError: SSD needs an input of at least")  # its class and last line
    assert "1 of 1 cells failed" in capsys.readouterr().out
