#!/usr/bin/env python
"""What scripts/install_mmcv.sh asks of the Python it installs into; builds nothing, imports no pws.

    python scripts/mmcv_check.py key VERSION     # the wheel cache's key for this torch, Python and build
    python scripts/mmcv_check.py check VERSION   # exit 0 when the installed mmcv has the ops this node needs

A CUDA build is wanted when torch has CUDA and sees a GPU, or ``FORCE_CUDA=1`` (a login node without one).
Its key names torch's CUDA version and the GPU architectures compiled for (``TORCH_CUDA_ARCH_LIST``, else
those of the visible GPUs, which is what torch's extension builder compiles for), so that a CPU-only wheel or
one built for other GPUs is never reused for it; ``FORCE_CUDA=1`` without a GPU needs the list (nothing to
read the architectures from). The check runs ``nms`` and ``roi_align`` on CPU tensors and, where a CUDA
build is wanted, needs the ops compiled with CUDA (``mmcv.ops.get_compiling_cuda_version``) and, where
torch sees a GPU, the same results from both ops on CUDA tensors.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

NOT_COMPILED = "not available"  # get_compiling_cuda_version() of an mmcv built without CUDA


def wants_cuda(env: Mapping[str, str], torch_cuda: str | None, gpu_visible: bool) -> bool:
    """A CUDA build: torch has CUDA (``torch.version.cuda``) and sees a GPU, or ``FORCE_CUDA=1``."""
    return torch_cuda is not None and (gpu_visible or env.get("FORCE_CUDA") == "1")


def arch_list(env: Mapping[str, str], capabilities: Sequence[tuple[int, int]]) -> str:
    """The architectures a CUDA build compiles for, as a key part (``8.0-9.0+PTX``): ``TORCH_CUDA_ARCH_LIST``
    (``;`` or space separated), else the visible GPUs' compute capabilities; ``ValueError`` with neither."""
    given = env.get("TORCH_CUDA_ARCH_LIST", "").replace(";", " ").split()
    archs = given or sorted({f"{major}.{minor}" for major, minor in capabilities})
    if not archs:
        raise ValueError(
            "FORCE_CUDA=1 without a visible GPU: set TORCH_CUDA_ARCH_LIST to the GPUs the wheel is for "
            "(e.g. TORCH_CUDA_ARCH_LIST='8.0;9.0' for A100 and H100/H200)"
        )
    return "-".join(archs)


def cache_key(mmcv_version: str, torch_version: str, python_tag: str, torch_cuda: str | None,
              env: Mapping[str, str], capabilities: Sequence[tuple[int, int]]) -> str:  # fmt: skip
    """``mmcv-<version>_torch-<version>_<python tag>_<cpu | cuda<version>_arch<list>>``."""
    if wants_cuda(env, torch_cuda, bool(capabilities)):
        flavor = f"cuda{torch_cuda}_arch{arch_list(env, capabilities)}"
    else:
        flavor = "cpu"
    return f"mmcv-{mmcv_version}_torch-{torch_version.replace('+', '-')}_{python_tag}_{flavor}"


def run_ops(device: str) -> tuple[list[int], list[float]]:
    """mmcv's ``nms`` (kept indices) and ``roi_align`` (pooled values) of fixed inputs on ``device``."""
    import torch
    from mmcv.ops import nms, roi_align

    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], device=device)
    _, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7], device=device), 0.5)
    features = torch.arange(64, dtype=torch.float32, device=device).reshape(1, 1, 8, 8)
    rois = torch.tensor([[0.0, 1, 1, 6, 6]], device=device)
    pooled = roi_align(features, rois, (2, 2), 1.0, 2, "avg", True)
    return keep.tolist(), pooled.flatten().tolist()


def ops_problem(mmcv_version: str, env: Mapping[str, str]) -> str | None:
    """Why the installed mmcv does not serve this node (see the module), or None."""
    try:
        import mmcv
        import torch
        from mmcv.ops import get_compiling_cuda_version
    except ImportError as e:
        return f"mmcv with its ops is not importable: {e}"
    if mmcv.__version__ != mmcv_version:
        return f"mmcv {mmcv.__version__} is installed, not {mmcv_version}"
    keep, pooled = run_ops("cpu")
    if keep != [0, 2]:
        return f"nms on the CPU kept {keep}, expected [0, 2]"
    if not wants_cuda(env, torch.version.cuda, torch.cuda.is_available()):
        return None
    compiled = get_compiling_cuda_version()
    if compiled == NOT_COMPILED:
        return "mmcv's ops were built without CUDA (a CPU-only build) where a CUDA build is wanted"
    if torch.cuda.is_available():
        on_gpu = run_ops("cuda")
        if on_gpu[0] != keep or max(abs(a - b) for a, b in zip(on_gpu[1], pooled, strict=True)) > 1e-4:
            return f"nms/roi_align on CUDA tensors give {on_gpu}, on the CPU {(keep, pooled)}"
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("key", "check"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    command, version = argv
    if command == "check":
        problem = ops_problem(version, os.environ)
        if problem is not None:
            print(problem, file=sys.stderr)
        return int(problem is not None)
    import torch

    gpus = [torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())]
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    try:
        print(cache_key(version, torch.__version__, tag, torch.version.cuda, os.environ, gpus))
    except ValueError as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
