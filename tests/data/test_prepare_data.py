"""scripts/prepare_data.py: the generator table, generating and checking from the command line."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "prepare_data.py"


@pytest.fixture(scope="module")
def cli():
    spec = importlib.util.spec_from_file_location("prepare_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("prepare_data", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_table_has_the_four_data_sets(cli) -> None:
    assert set(cli.GENERATORS) == {"voc", "coco", "cifar10", "imagenet"}


@pytest.mark.parametrize(
    ("name", "layout", "size", "numbers"),
    [
        ("voc", "VOCdevkit", 2, "VOC2007 test 2 of 4,952"),
        ("coco", "coco", 2, "train2017 2 of 118,287, val2017 2 of 5,000"),
        ("cifar10", "", 10, "train 10 of 50,000, test 10 of 10,000"),
        ("imagenet", "", 10, "train 10 of 1,281,167, val 10 of 50,000, classes 10 of 1,000"),
    ],
)
def test_generate_then_check(cli, tmp_path: Path, capsys: pytest.CaptureFixture, name: str, layout: str,
                             size: int, numbers: str) -> None:  # fmt: skip
    """A generated set checks without a problem, and the check says it is generated and partial (exit 2)."""
    args = [name, "--root", str(tmp_path), "--num-train", str(size), "--num-test", str(size), "--seed", "3"]
    assert cli.main(args) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / layout)
    assert cli.main([name, "--root", str(tmp_path), "--check"]) == 2
    out = capsys.readouterr().out
    assert out.startswith(f"{name}: generated: ") and "partial" in out and numbers in out


def test_a_complete_set_is_ok(cli, tmp_path: Path, capsys: pytest.CaptureFixture,
                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """With the official counts (patched to the small set's) and no generator's marker: OK, exit 0."""
    from pws.data.census import OFFICIAL

    assert cli.main(["cifar10", "--root", str(tmp_path), "--num-train", "5", "--num-test", "3"]) == 0
    (tmp_path / "cifar-10-batches-py" / "synthetic.json").unlink()
    monkeypatch.setitem(OFFICIAL, "cifar10", {"train": 5, "test": 3})
    capsys.readouterr()
    assert cli.main(["cifar10", "--root", str(tmp_path), "--check"]) == 0
    folder = tmp_path / "cifar-10-batches-py"
    assert capsys.readouterr().out.strip() == f"cifar10: OK ({folder}): train 5, test 3"


def test_check_names_the_first_malformed_file(cli, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["cifar10", "--root", str(tmp_path), "--num-train", "5", "--num-test", "3"]) == 0
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(b"\x00")
    assert cli.main(["cifar10", "--root", str(tmp_path), "--check"]) == 1
    assert "data_batch_2: not a readable pickled batch" in capsys.readouterr().err


def test_check_of_missing_data_names_the_path(cli, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["coco", "--root", str(tmp_path / "none"), "--check"]) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "none") in err and "cocodataset.org" in err


def test_runs_as_a_script(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), "voc", "--root", str(tmp_path), "--num-train", "2",
                          "--num-val", "2"], capture_output=True, text=True, check=True)  # fmt: skip
    assert out.stdout.strip() == str(tmp_path / "VOCdevkit")


def test_quirks_where_a_generator_has_them(cli, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from PIL import Image

    args = ["imagenet", "--root", str(tmp_path), "--num-train", "10", "--num-test", "10", "--quirks"]
    assert cli.main(args) == 0
    files = sorted(tmp_path.glob("train/*/*"))
    assert {p.suffix for p in files} == {".JPEG"} and len(files) == 10
    assert sorted(Image.open(p).format for p in files) == ["JPEG"] * 9 + ["PNG"]  # a PNG named .JPEG
    with pytest.raises(SystemExit):
        cli.main(["cifar10", "--root", str(tmp_path / "c"), "--quirks"])
    assert "cifar10 has no quirks" in capsys.readouterr().err
