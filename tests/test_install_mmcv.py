"""scripts/install_mmcv.sh and scripts/mmcv_check.py without building mmcv: the wheel cache's key (CPU or
CUDA build, CUDA version, architectures) and the install check of the mmcv installed here."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from detection_stack import require_detection_stack

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture(scope="module")
def check():
    spec = importlib.util.spec_from_file_location("mmcv_check", SCRIPTS / "mmcv_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def key(check, env: dict[str, str], gpus: list[tuple[int, int]], cuda: str | None = "13.0") -> str:
    return check.cache_key("2.1.0", "2.14.1+cu130", "cp311", cuda, env, gpus)


def test_the_cache_key_tells_cpu_and_cuda_builds_apart(check) -> None:
    assert key(check, {}, []) == "mmcv-2.1.0_torch-2.14.1-cu130_cp311_cpu"  # a CPU node
    assert key(check, {}, [(9, 0)]) == "mmcv-2.1.0_torch-2.14.1-cu130_cp311_cuda13.0_arch9.0"  # an H200
    assert key(check, {}, [(8, 0), (9, 0), (8, 0)]).endswith("_cuda13.0_arch8.0-9.0")
    forced = {"FORCE_CUDA": "1", "TORCH_CUDA_ARCH_LIST": "8.0;9.0+PTX"}
    assert key(check, forced, []).endswith("_cuda13.0_arch8.0-9.0+PTX")  # a login node
    assert key(check, {"TORCH_CUDA_ARCH_LIST": "8.0 9.0"}, [(9, 0)]).endswith("_arch8.0-9.0")  # the list wins
    assert key(check, {"FORCE_CUDA": "1"}, [], cuda=None).endswith("_cpu")  # a CPU-only torch builds no CUDA
    with pytest.raises(ValueError, match="TORCH_CUDA_ARCH_LIST"):  # nothing to read the architectures from
        key(check, {"FORCE_CUDA": "1"}, [])


def test_the_install_check_of_this_environment(check, monkeypatch: pytest.MonkeyPatch) -> None:
    """The mmcv installed here passes; where a CUDA build is wanted, a CPU-only build fails."""
    require_detection_stack()
    import mmcv.ops
    import torch

    keep, pooled = check.run_ops("cpu")
    # nms keeps the first box and the far one; roi_align of the plane 8y + x averages it at each bin's
    # centre (aligned: the RoI (1, 1)-(6, 6) shifted by half a pixel, bins of 2.5 pixels)
    assert keep == [0, 2] and pooled == pytest.approx([15.75, 18.25, 35.75, 38.25])
    assert check.ops_problem("9.9.9", {}).startswith("mmcv 2.1.0 is installed, not 9.9.9")
    assert check.ops_problem("2.1.0", {}) is None  # on a GPU: also on CUDA tensors
    # FORCE_CUDA=1 (a login node) with a CPU-only build installed: not usable, so the script rebuilds
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(mmcv.ops, "get_compiling_cuda_version", lambda: check.NOT_COMPILED)
    assert "built without CUDA" in check.ops_problem("2.1.0", {"FORCE_CUDA": "1"})
    monkeypatch.setattr(mmcv.ops, "get_compiling_cuda_version", lambda: "13.0")
    assert torch.cuda.is_available() or check.ops_problem("2.1.0", {"FORCE_CUDA": "1"}) is None


def test_the_shell_script_parses_and_asks_the_checker() -> None:
    subprocess.run(["bash", "-n", str(SCRIPTS / "install_mmcv.sh")], check=True)
    text = (SCRIPTS / "install_mmcv.sh").read_text()
    assert '"$CHECK" key' in text and '"$CHECK" check' in text
    out = subprocess.run([sys.executable, str(SCRIPTS / "mmcv_check.py")], capture_output=True, text=True,
                         check=False)  # fmt: skip
    assert out.returncode == 2 and "key VERSION" in out.stderr
