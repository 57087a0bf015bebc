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


def test_table_has_the_detection_sets(cli) -> None:
    assert {"voc", "coco"} <= set(cli.GENERATORS)


@pytest.mark.parametrize(("name", "layout"), [("voc", "VOCdevkit"), ("coco", "coco")])
def test_generate_then_check(
    cli, tmp_path: Path, capsys: pytest.CaptureFixture, name: str, layout: str
) -> None:
    args = [name, "--root", str(tmp_path), "--num-train", "2", "--num-test", "2", "--seed", "3"]
    assert cli.main(args) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / layout)
    assert cli.main([name, "--root", str(tmp_path), "--check"]) == 0
    assert "OK" in capsys.readouterr().out


def test_check_of_missing_data_names_the_path(cli, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["coco", "--root", str(tmp_path / "none"), "--check"]) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "none") in err and "cocodataset.org" in err


def test_runs_as_a_script(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), "voc", "--root", str(tmp_path), "--num-train", "2",
                          "--num-val", "2"], capture_output=True, text=True, check=True)  # fmt: skip
    assert out.stdout.strip() == str(tmp_path / "VOCdevkit")
