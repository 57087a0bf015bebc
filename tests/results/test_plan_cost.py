"""``reproduce_table.py tableN --plan``: each cell's device-hours from a rehearsal table (the whole app's
throughput: epochs x images per epoch / images per s x seeds), the source of each number, nothing launched."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest

from pws.paper.experiments import REPO_ROOT, load_table
from pws.results import reproduce
from pws.results.cost import default_throughput_files, read_throughput, table_cost
from pws.results.rehearsal import Options, Rehearsed, write_table

H200 = "NVIDIA H200"


def row(cell: str, model: str, method: str, size: int, batch: int, ips: float, device: str = H200,
        status: str = "ok", data: str | None = None) -> Rehearsed:  # fmt: skip
    """A rehearsal's row, on the stand-in of its network's data set unless ``data`` says otherwise."""
    data = data or ("synthetic_voc" if model.startswith("ssd") else "synthetic_cifar")
    return Rehearsed(cell, status, batch / ips, ips, 1000.0, device, 1.0, 2.3, 3, batch, "x", model, method,
                     size, data, "2026-12-05")  # fmt: skip


@pytest.fixture
def rehearsal(tmp_path: Path) -> Path:
    rows = [
        row("plain/lr0.1/bn", "plain_c", "bn", 32, 128, 5000.0),
        row("plain/lr0.1/pws", "plain_c", "pws", 32, 128, 10000.0),
        row("residual/lr0.1/gn", "resnet_cifar", "gn", 32, 128, 1.0, status="RuntimeError: out of memory"),
        row("bs8/pws", "ssd_vgg16", "pws", 320, 8, 50.0),
        row("bs8/pws", "ssd_vgg16", "pws", 320, 8, 0.5, device="cpu, 2 threads"),
    ]
    return write_table("fixture", rows, tmp_path, Options())["csv"]


def test_a_rehearsal_table_is_read_by_kind_with_its_source(rehearsal: Path) -> None:
    got = {(t.model, t.method, t.size, t.batch, t.device): t.images_per_s for t in read_throughput(rehearsal)}
    assert got == {("plain_c", "bn", 32, 128, H200): 5000.0, ("plain_c", "pws", 32, 128, H200): 10000.0,
                   ("ssd_vgg16", "pws", 320, 8, H200): 50.0,
                   ("ssd_vgg16", "pws", 320, 8, "cpu, 2 threads"): 0.5}  # fmt: skip  (a failed cell: none)
    sources = {t.source for t in read_throughput(rehearsal)}
    assert all(s.startswith(str(rehearsal)) and "2026-12-05" in s for s in sources)


def test_cell_hours_are_epochs_times_images_over_throughput_times_seeds(rehearsal: Path) -> None:
    measured = read_throughput(rehearsal)
    cells = ["plain/lr0.1/pws", "plain/lr0.1/bn", "plain/lr0.1/sn", "residual/lr0.1/pws"]
    cost = table_cost(load_table("table4"), "full", 3, measured, cells=cells)
    by = {c.cell: c for c in cost.cells}
    # CIFAR-10 at the paper's setting: 200 epochs of 390 whole batches of 128 (drop_last) = 49,920 images
    assert {(c.epochs, c.images_per_epoch, c.seeds) for c in cost.cells} == {(200, 49_920, 3)}
    assert math.isclose(by["plain/lr0.1/pws"].hours, 200 * 49_920 / 10_000 * 3 / 3600)
    assert math.isclose(by["plain/lr0.1/bn"].hours, 200 * 49_920 / 5_000 * 3 / 3600)
    # SN was not rehearsed: the same network's nearest method stands in, and the note says which
    assert by["plain/lr0.1/sn"].throughput.method == "bn" and "measured for bn" in by["plain/lr0.1/sn"].note
    # the residual net's only rehearsal failed: no number, and the plan says why
    assert by["residual/lr0.1/pws"].hours is None and cost.unknown == [by["residual/lr0.1/pws"]]
    assert "no rehearsal of this kind" in by["residual/lr0.1/pws"].note
    # detection: SSD320-VGG16 at Table 1's batch 8 and 2, 240 epochs of VOC07+12's 16,551 images; the GPU's
    # rehearsal before the CPU's, the nearest batch for batch 2, said in the note
    det = table_cost(load_table("table1"), "full", 2, measured, cells=["bs8/pws", "bs2/pws"])
    bs2, bs8 = det.cells  # the table's column order
    assert (bs8.epochs, bs8.images_per_epoch, bs8.kind.batch, bs2.kind.batch) == (240, 16_551, 8, 2)
    assert math.isclose(bs8.hours, 240 * 16_551 / 50 * 2 / 3600) and bs8.throughput.device == H200
    assert "measured at batch 8" in bs2.note and not bs8.note


def test_the_data_set_and_then_the_batch_choose_among_a_networks_measurements(tmp_path: Path) -> None:
    rows = [row("bs8/pws", "ssd_vgg16", "pws", 320, 8, 40.0, data="synthetic_voc"),
            row("ssd/1x/pws", "ssd_vgg16", "pws", 320, 2, 30.0, data="synthetic_coco")]  # fmt: skip
    measured = read_throughput(write_table("mixed", rows, tmp_path, Options())["csv"])
    assert {t.data for t in measured} == {"voc0712", "coco"}  # a stand-in counts as the set it stands for
    (coco,) = table_cost(load_table("table3"), "full", 1, measured, cells=["ssd/1x/bn"]).cells
    assert coco.throughput.images_per_s == 30.0  # SSD on COCO (its 80-class head), not the nearer batch
    assert coco.note == "measured for pws; measured at batch 2, its images/s taken for batch 16"
    (voc,) = table_cost(load_table("table2"), "full", 1, measured, cells=["lr1e-3/vgg16/pws/gamma1e-3"]).cells
    assert voc.throughput.images_per_s == 40.0
    assert voc.note == "measured at batch 8, its images/s taken for batch 16"
    assert math.isclose(voc.hours, 240 * 16_551 / 40.0 / 3600)


def test_the_committed_rehearsal_tables_are_read() -> None:
    files = default_throughput_files()
    assert files, "bench/results/rehearsal/ keeps the measured rehearsal tables"
    assert all(read_throughput(f) for f in files)


@pytest.mark.parametrize("table", ["table1", "table2", "table3", "table4", "table5"])
def test_every_full_scale_cell_has_a_number_from_the_committed_rehearsals(table: str) -> None:
    measured = [t for f in default_throughput_files() for t in read_throughput(f)]
    cost = table_cost(load_table(table), "full", 3, measured)
    assert cost.cells and not cost.unknown, [c.cell for c in cost.unknown]
    for c in cost.cells:
        assert c.throughput.source.startswith("bench/results/rehearsal/") and c.throughput.device
        assert math.isfinite(c.hours) and c.hours > 0


def test_plan_prints_the_cost_and_launches_nothing(rehearsal: Path, tmp_path: Path, monkeypatch, capsys
                                                   ) -> None:  # fmt: skip
    monkeypatch.syspath_prepend(str(REPO_ROOT / "scripts"))
    import reproduce_table as cli

    def refuse(*args, **kwargs):
        raise AssertionError(f"--plan launched something: {args}")

    for target, name in ((subprocess, "Popen"), (subprocess, "run"), (reproduce, "execute"),
                         (reproduce, "run_all"), (cli, "reproduce")):  # fmt: skip
        monkeypatch.setattr(target, name, refuse)
    runs = tmp_path / "runs"
    code = cli.main(["table4", "--scale", "full", "--seeds", "0,1,2", "--plan", "--runs", str(runs),
                     "--cells", "plain/lr0.1/pws,residual/lr0.1/pws",
                     "--throughput", str(rehearsal)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and not runs.exists()
    hours = 200 * 49_920 / 10_000 * 3 / 3600
    assert f"| plain/lr0.1/pws | plain_c pws 32x32 bs128 | 200 | 49,920 | 10,000.0 | {hours:.2f} |" in out
    assert f"total: {hours:.2f} GPU-hours for 1 cells; 1 cells without a throughput not counted" in out
    assert f"{rehearsal} ({H200}, 2026-12-05)" in out and "nothing is launched" in out
