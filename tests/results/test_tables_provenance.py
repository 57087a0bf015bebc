"""Where every number comes from: per cell of a rendered table (run directories, commits, wandb run ids,
the command that reproduces it), and per published number (the code that produced it; the authors' later
numbers as a second reference, ``--reference authors``)."""

from __future__ import annotations

import csv
import importlib.util
import io
import shlex
from pathlib import Path

import pytest

from pws.paper.experiments import all_tables
from pws.paper.published import produced_by, published, reference_value

from .tables_fakeruns import make_run

REPO = Path(__file__).resolve().parents[2]


def _csv(path: Path) -> dict[str, dict[str, str]]:
    return {(r["cell"], r["metric"]): r for r in csv.DictReader(io.StringIO(path.read_text()))}


def test_every_published_number_says_where_it_was_produced() -> None:
    for table in all_tables():
        for cell in published()[table.name]["cells"]:
            source = produced_by(table.name, cell)
            if table.name == "table5":
                assert "PyTorch" in source and "lyxzzz/PWSConv" in source, cell
            elif cell.startswith("mask_rcnn/"):
                assert "mmdetection" in source, cell
            else:  # CIFAR-10 and VOC, COCO's SSD: the TensorFlow code
                assert "TensorFlow" in source and "PWSConv_backup" in source, (table.name, cell)


def test_the_authors_later_numbers_are_a_second_reference() -> None:
    for method, accuracy in (("bn", 76.4), ("pws", 76.0), ("gn", 75.7)):  # their README's top-1 accuracy
        ref = reference_value("table5", method, "top1_error", "authors")
        assert ref.whose == "authors" and ref.value == pytest.approx(100 - accuracy)
        assert "README" in ref.source
    for method, box, mask in (("pws", 38.9, 35.3), ("gn", 38.2, 34.5), ("bn", 38.0, 34.4)):
        cell = f"mask_rcnn/1x/{method}"
        assert reference_value("table3", cell, "bbox_mAP", "authors").value == box
        ref = reference_value("table3", cell, "segm_mAP", "authors")
        assert ref.value == mask and "12 epochs" in ref.source and "24" in ref.source
    # where the authors published nothing later: the paper's number, with where it was produced
    ln = reference_value("table5", "ln", "top1_error", "authors")
    assert (ln.whose, ln.value) == ("paper", 25.3) and "PyTorch" in ln.source
    fifty = reference_value("table3", "mask_rcnn/1x/pws", "bbox_mAP_50", "authors")
    assert (fifty.whose, fifty.value) == ("paper", 59.6)
    assert reference_value("table5", "pws", "top1_error").whose == "paper"
    with pytest.raises(ValueError, match="unknown reference"):
        reference_value("table5", "pws", "top1_error", "readme")


def test_render_table_reference_authors(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("render_table", REPO / "scripts" / "render_table.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    root = tmp_path / "runs"
    for seed, v in enumerate([23.0, 24.0]):
        make_run(root, "table5", "pws", seed, "finished", {"top1_error": v}, scale="full")
    make_run(root, "table5", "ln", 0, "finished", {"top1_error": 25.0}, scale="full")
    out = tmp_path / "out"
    assert script.main(["table5", "--runs", str(root), "--scale", "full", "--out", str(out), "--no-plots",
                 "--wandb", "disabled", "--reference", "authors"]) == 0
    rows = _csv(out / "table5.csv")
    pws, ln = rows[("pws", "top1_error")], rows[("ln", "top1_error")]
    assert (pws["reference"], pws["paper"]) == ("authors", "24.0")
    assert (ln["reference"], ln["paper"]) == ("paper", "25.3")
    assert "README" in pws["reference_source"] and "PyTorch" in ln["reference_source"]
    md = (out / "table5.md").read_text()
    assert "| Method | val error (%): ours | 95% CI | authors | Δ |" in md
    assert "authors: the number the authors published later" in md
    claims = (out / "claims.md").read_text()
    assert "reference: the authors' numbers" in claims and "| authors | verdict |" in claims


def test_each_cell_names_its_runs_commits_wandb_ids_and_command(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    cell_overrides = ["scale=smoke", "data=digits", "model=plain_c", "optim.lr=0.1", "norm=pws",
                      "norm.gamma=1.0e-3"]
    dirs = [make_run(root, "table4", "plain/lr0.1/pws", seed, "finished",
                     {"top1_error": 6.0 + seed, "git_dirty": seed == 1}, overrides=cell_overrides)
            for seed in (0, 1)]
    for d, run_id in zip(dirs, ("abc123", "def456"), strict=True):
        (d / "wandb_run_id").write_text(run_id + "\n")
    make_run(root, "table4", "plain/lr0.1/bn", 2, "finished", {"top1_error": 5.0})  # no overrides saved
    from pws.results.report import render_table

    rep = render_table("table4", root, "smoke", tmp_path / "out", plots=False, wandb_mode="disabled")
    rows = _csv(rep.paths["csv"])
    pws, bn = rows[("plain/lr0.1/pws", "top1_error")], rows[("plain/lr0.1/bn", "top1_error")]
    assert pws["run_dirs"].split() == [str(d) for d in dirs]
    assert pws["commits"] == "0123456789 0123456789-dirty" and pws["wandb_ids"] == "abc123 def456"
    assert shlex.split(pws["command"]) == ["python", "-m", "pws.classify", "-m", *cell_overrides,
                                           "table=table4", "cell=plain/lr0.1/pws", "seed=0,1"]
    # a run that saved no overrides: the table's own overrides of the cell
    assert shlex.split(bn["command"]) == ["python", "-m", "pws.classify", "-m", "scale=smoke", "data=digits",
                                          "model=plain_c", "optim.lr=0.1", "norm=bn", "table=table4",
                                          "cell=plain/lr0.1/bn", "seed=2"]
    assert (bn["wandb_ids"], bn["commits"], pws["reference"]) == ("", "0123456789", "paper")
