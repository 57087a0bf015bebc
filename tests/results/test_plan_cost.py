"""``reproduce_table.py tableN --plan``: each cell's device-hours from a known throughput file (the
arithmetic: epochs x images per epoch / images per s x seeds), and nothing launched."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest

from pws.paper.experiments import REPO_ROOT, load_table
from pws.results import reproduce
from pws.results.cost import read_throughput, table_cost

CLASSIFY_FILE = """\
# bench-classify: Tables 4 and 5 networks, training steps, device cuda
torch 2.11.0+cu130, python 3.12.3, x86_64, NVIDIA H200; cudnn.benchmark on
warm-up 5 steps, then 15 timed steps per method, round-robin

## plain_c, 32x32, batch 128 (load average 0.9 on 16 cores at start)
| method | median step (ms) | images/s | vs bn (median) | vs none (median) | spread |
|---|---|---|---|---|---|
| bn | 25.6 | 5000.0 | 1.000x | 0.5x | 1% |
| pws | 12.8 | 10000.0 | 2.000x | 1.0x | 1% |

## resnet_cifar, 32x32, batch 128 (load average 1.0 on 16 cores at start)
| method | median step (ms) | images/s | vs bn (median) | vs none (median) | spread |
|---|---|---|---|---|---|
| pws | 64 | 2000.0 | 1.000x | 1.000x | 2% |
"""
LAYERS_FILE = """\
# bench-layers: VGG-16 conv stack (13 conv3x3 + norm + ReLU, 4 max-pools), device cuda
torch 2.11.0+cu130, python 3.12.3, x86_64, NVIDIA H200; cudnn.benchmark on
warm-up 5 steps, then 40 timed steps per method, round-robin; wall-clock time

## training, 320x320, batch 8 (load average 0.2 on 16 cores at start)
| method | median step (ms) | images/s | vs bn (median) | spread |
|---|---|---|---|---|
| pws | 16 | 500.0 | 1.0x | 3% |

## inference, 320x320, batch 8
| method | median step (ms) | images/s | vs bn (median) | spread |
|---|---|---|---|---|
| pws | 1 | 9999.0 | 1.0x | 3% |
"""


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    (classify := tmp_path / "bench_classify_fixture.txt").write_text(CLASSIFY_FILE)
    (layers := tmp_path / "bench_layers_fixture.txt").write_text(LAYERS_FILE)
    return classify, layers


def test_throughput_files_are_read(files) -> None:
    classify, layers = files
    got = {(t.model, t.method, t.size, t.batch): t.images_per_s for t in read_throughput(classify)}
    assert got == {("plain_c", "bn", 32, 128): 5000.0, ("plain_c", "pws", 32, 128): 10000.0,
                   ("resnet_cifar", "pws", 32, 128): 2000.0}  # fmt: skip
    (only,) = read_throughput(layers)  # the training section; inference is not a training throughput
    assert (only.model, only.method, only.size, only.batch, only.images_per_s) == ("vgg16_stack", "pws", 320,
                                                                                  8, 500.0)  # fmt: skip
    assert only.device == "NVIDIA H200" and only.source.endswith("bench_layers_fixture.txt")


def test_cell_hours_are_epochs_times_images_over_throughput_times_seeds(files) -> None:
    measured = [t for f in files for t in read_throughput(f)]
    cells = ["plain/lr0.1/pws", "plain/lr0.1/bn", "residual/lr0.1/pws", "plain/lr0.1/sn"]
    cost = table_cost(load_table("table4"), "full", 3, measured, cells=cells)
    by = {c.cell: c for c in cost.cells}
    # CIFAR-10 at the paper's setting: 200 epochs of 390 whole batches of 128 (drop_last) = 49,920 images
    assert {(c.epochs, c.images_per_epoch, c.seeds) for c in cost.cells} == {(200, 49_920, 3)}
    assert math.isclose(by["plain/lr0.1/pws"].hours, 200 * 49_920 / 10_000 * 3 / 3600)
    assert math.isclose(by["plain/lr0.1/bn"].hours, 200 * 49_920 / 5_000 * 3 / 3600)
    assert math.isclose(by["residual/lr0.1/pws"].hours, 200 * 49_920 / 2_000 * 3 / 3600)
    assert by["plain/lr0.1/sn"].hours is None and cost.unknown == [by["plain/lr0.1/sn"]]
    assert math.isclose(cost.hours, 200 * 49_920 * 3 / 3600 * (1 / 10_000 + 1 / 5_000 + 1 / 2_000))
    # detection: SSD320-VGG16 at Table 1's batch 8, 240 epochs of VOC07+12's 16,551 images, the backbone
    det = table_cost(load_table("table1"), "full", 2, measured, cells=["bs8/pws", "bs2/pws"])
    bs2, bs8 = det.cells  # the table's column order
    assert (bs8.epochs, bs8.images_per_epoch, bs8.kind.batch, bs2.kind.batch) == (240, 16_551, 8, 2)
    assert math.isclose(bs8.hours, 240 * 16_551 / 500 * 2 / 3600)
    assert "backbone only" in bs8.note and "measured at batch 8" in bs2.note


def test_plan_prints_the_cost_and_launches_nothing(files, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.syspath_prepend(str(REPO_ROOT / "scripts"))
    import reproduce_table as cli

    def refuse(*args, **kwargs):
        raise AssertionError(f"--plan launched something: {args}")

    for target, name in ((subprocess, "Popen"), (subprocess, "run"), (reproduce, "execute"),
                         (reproduce, "run_all"), (cli, "reproduce")):  # fmt: skip
        monkeypatch.setattr(target, name, refuse)
    runs = tmp_path / "runs"
    code = cli.main(["table4", "--scale", "full", "--seeds", "0,1,2", "--plan", "--runs", str(runs),
                     "--cells", "plain/lr0.1/pws,plain/lr0.1/sn", "--throughput", str(files[0])])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and not runs.exists()
    hours = 200 * 49_920 / 10_000 * 3 / 3600
    assert f"| plain/lr0.1/pws | plain_c pws 32x32 bs128 | 200 | 49,920 | 10,000.0 | {hours:.2f} |" in out
    assert f"total: {hours:.2f} GPU-hours for 1 cells; 1 cells without a throughput not counted" in out
    assert "bench_classify_fixture.txt" in out and "nothing is launched" in out
