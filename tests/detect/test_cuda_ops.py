"""A detection run on CUDA with mmcv's ops built without CUDA is refused before training, with the fix
(pws.detect.cuda_ops); tested on a CPU by making torch report a GPU and mmcv report its build."""

from __future__ import annotations

import pytest
import torch
from detection_stack import require_detection_stack

from .conftest import compose_detect

require_detection_stack()

from pws.detect import cuda_ops  # noqa: E402
from pws.detect.app import DETECT  # noqa: E402
from pws.engine.errors import ConfigError  # noqa: E402


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


def test_a_cuda_run_needs_mmcv_ops_built_with_cuda(gpu, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cuda_ops, "compiled_cuda_version", lambda: None)
    with pytest.raises(ConfigError, match=r"would train on cuda, but .* built without CUDA") as info:
        DETECT.plan(compose_detect(["train.device=cuda"]), world_size=1)
    assert "FORCE_CUDA=1" in str(info.value) and "TORCH_CUDA_ARCH_LIST" in str(info.value)
    assert "MMCV_WHEEL" in str(info.value)
    with pytest.raises(ConfigError, match="built without CUDA"):  # mmengine takes the GPU whatever it says
        DETECT.plan(compose_detect(["train.device=cpu"]), world_size=1)
    monkeypatch.setattr(cuda_ops, "compiled_cuda_version", lambda: "13.0")
    assert DETECT.plan(compose_detect(["train.device=cuda"]), world_size=1).device == "cuda"


def test_a_cpu_run_takes_any_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(cuda_ops, "compiled_cuda_version", lambda: None)
    assert DETECT.plan(compose_detect(["train.device=cpu"]), world_size=1).device == "cpu"
    assert cuda_ops.cuda_ops_problem("cpu") is None and cuda_ops.cuda_ops_problem("cuda:1") is not None


def test_the_build_is_read_from_mmcv() -> None:
    from mmcv.ops import get_compiling_cuda_version

    compiled = get_compiling_cuda_version()
    assert cuda_ops.compiled_cuda_version() == (None if compiled == cuda_ops.NOT_COMPILED else compiled)
