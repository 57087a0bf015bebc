"""Table 3's Mask R-CNN rows start from Table 5's run of the same method (pws/results/backbones.py): the
driver finds it in the runs root, names it in the dry run, exports it once; a cell whose run is missing
waits, naming it, while the SSD cells run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from detection_stack import require_detection_stack
from tables_fakeruns import make_run

from pws.paper.experiments import load_table
from pws.results.backbones import CHECKPOINT_KEY, ensure_exported
from pws.results.reproduce import plan, reproduce

REPO = Path(__file__).resolve().parents[2]
PWS_CELL = "mask_rcnn/1x/pws"
MASK_CELLS = ["mask_rcnn/1x/bn", "mask_rcnn/1x/gn", "mask_rcnn/1x/pws"]


def _table5_run(runs: Path, method: str, seed: int = 0) -> Path:
    """A finished full-scale Table 5 run (metrics.json + .hydra, no checkpoint)."""
    return make_run(runs / "full" / "table5", "table5", method, seed, "finished", {"top1_error": 24.0},
                    scale="full", overrides=[f"norm={method}", "model=resnet50"])


def _with_checkpoint(run_dir: Path, method: str) -> Path:
    """Give a fabricated run the record and checkpoint of a classification ResNet-50 (untrained)."""
    from pws.models.resnet50 import resnet50
    from pws.nn.factory import NormMethod

    record = json.loads((run_dir / "metrics.json").read_text())
    record.update(model="resnet50", method=method, plan={"norm": {"method": method}})
    (run_dir / "metrics.json").write_text(json.dumps(record))
    net = resnet50(NormMethod(method), num_classes=4)
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, run_dir / "epoch_1.pth")
    (run_dir / "last_checkpoint").write_text(str(run_dir / "epoch_1.pth"))
    return run_dir


def _checkpoint_of(launch) -> str | None:
    given = [o.split("=", 1)[1] for o in launch.command if o.startswith(CHECKPOINT_KEY + "=")]
    assert len(given) <= 1, launch.command
    return given[0] if given else None


def test_each_mask_rcnn_cell_takes_table5s_run_of_its_method(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    wanted = {m: _table5_run(runs, m, seed=1) for m in ("bn", "gn", "pws")}
    for m in ("bn", "gn", "pws", "ln"):
        _table5_run(runs, m, seed=0)  # other seeds and methods: decoys
    launches = {ln.cell.id: ln for ln in plan(load_table("table3"), "full", [0], runs_root=runs,
                                              backbone_seed=1)}
    for cell in MASK_CELLS:
        method = cell.rsplit("/", 1)[1]
        src = launches[cell].backbone
        assert src.kind == "run" and src.run_dir == wanted[method].resolve()
        exported = wanted[method].resolve() / "export" / "mmdet_backbone.pth"
        assert _checkpoint_of(launches[cell]) == str(exported)
    for cell in ("ssd/1x/bn", "ssd/2x/pws"):  # SSD: from scratch, as the paper
        assert launches[cell].backbone.kind == "scratch" and _checkpoint_of(launches[cell]) is None


def test_an_explicit_checkpoint_is_taken_as_given(tmp_path: Path) -> None:
    launches = plan(load_table("table3"), "full", [0], runs_root=tmp_path / "runs", cells=[PWS_CELL],
                    extra_overrides=[f"{CHECKPOINT_KEY}=/data/r50_pws.pth"])
    assert launches[0].backbone.kind == "explicit"
    assert _checkpoint_of(launches[0]) == "/data/r50_pws.pth"


def test_the_dry_run_says_where_each_backbone_comes_from(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    pws_run = _table5_run(runs, "pws")
    lines: list[str] = []
    cells = ["mask_rcnn/1x/bn", "mask_rcnn/1x/pws", "ssd/1x/bn"]
    assert reproduce("table3", scale="full", runs_root=runs, cells=cells, dry_run=True,
                     printer=lines.append) is None
    # each cell's command (its last line; a waiting cell's note comes first), then its backbone
    blocks = {c: lines[max(i for i, ln in enumerate(lines) if ln.startswith(f"  {c}: ")) + 1] for c in cells}
    assert all(b.startswith("    backbone: ") for b in blocks.values()), lines
    assert f"table5's run {pws_run.resolve()} -> " in blocks["mask_rcnn/1x/pws"]
    assert "exported on launch" in blocks["mask_rcnn/1x/pws"]
    assert f"waits for table5's run {(runs / 'full/table5/bn/seed0').resolve()}" in blocks["mask_rcnn/1x/bn"]
    assert "from scratch" in blocks["ssd/1x/bn"]
    assert not (pws_run / "export").exists()  # a dry run exports nothing
    smoke: list[str] = []
    reproduce("table3", scale="smoke", runs_root=runs, cells=["mask_rcnn/1x/pws"], dry_run=True,
              printer=smoke.append)
    assert "backbone: from scratch (smoke scale" in "\n".join(smoke)
    assert CHECKPOINT_KEY not in "\n".join(smoke)


def test_a_cell_whose_table5_run_is_missing_waits_naming_it_while_ssd_cells_run(tmp_path: Path,
                                                                               capsys) -> None:
    runs = tmp_path / "runs"
    launches = {ln.cell.id: ln for ln in plan(load_table("table3"), "full", [0], runs_root=runs)}
    for cell in MASK_CELLS:  # no Table 5 run at all: every Mask R-CNN cell waits, naming its run
        assert launches[cell].skipped and launches[cell].waiting
        looked = (runs / "full" / "table5" / cell.rsplit("/", 1)[1] / "seed0").resolve()
        (note,) = launches[cell].skip_notes()
        assert f"waits for table5's run {looked}" in note
        assert "make it with: python scripts/reproduce_table.py table5 --scale full --seeds 0" in note
    ssd = [c for c in launches if c.startswith("ssd/")]
    assert ssd and all(launches[c].seeds == [0] and not launches[c].waiting for c in ssd)

    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import reproduce_table
    finally:
        sys.path.remove(str(REPO / "scripts"))
    _table5_run(runs, "bn")
    rc = reproduce_table.main(["table3", "--scale", "full", "--runs", str(runs), "--no-plots",
                               "--out", str(tmp_path / "results"), "--cells", "mask_rcnn/1x/pws"])
    assert rc == 0
    looked = (runs / "full" / "table5" / "pws" / "seed0").resolve()
    assert f"mask_rcnn/1x/pws: not run: waits for table5's run {looked}" in capsys.readouterr().out
    assert not (runs / "full" / "table3").exists()  # nothing launched


def test_the_run_is_exported_once_and_loads_into_mmdets_resnet50(tmp_path: Path) -> None:
    require_detection_stack()
    from pws.transfer.backbone import mmdet_resnet50

    run_dir = _with_checkpoint(_table5_run(tmp_path / "runs", "pws"), "pws")
    (launch,) = plan(load_table("table3"), "full", [0], runs_root=tmp_path / "runs", cells=[PWS_CELL])
    path, written = ensure_exported(launch.backbone)
    assert written and str(path) == _checkpoint_of(launch)
    mtime = path.stat().st_mtime_ns
    assert ensure_exported(launch.backbone) == (path, False) and path.stat().st_mtime_ns == mtime  # cached
    mmdet_resnet50({"method": "pws"}).load_state_dict(torch.load(path)["state_dict"], strict=True)
    (launch,) = plan(load_table("table3"), "full", [0], runs_root=tmp_path / "runs", cells=[PWS_CELL])
    assert "exported already" in launch.backbone.note
    assert list(run_dir.glob("*.pth")) == [run_dir / "epoch_1.pth"]  # not beside the run's own checkpoints
