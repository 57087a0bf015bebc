"""mmcv's compiled ops on a GPU: a detection run on CUDA needs mmcv built with its CUDA ops.

Every detector here calls mmcv's compiled ops: ``nms`` (SSD's and Mask R-CNN's post-processing, first met
at an evaluation) and ``RoIAlign`` (Mask R-CNN's heads, first met at its first iteration). An mmcv built on a
node without a GPU has them for CPU tensors only, and a CUDA run would stop there, hours or days in.
:func:`cuda_ops_problem` says so before training (the app refuses the run with the fix, exit 2).
"""

from __future__ import annotations

NOT_COMPILED = "not available"  # mmcv.ops.get_compiling_cuda_version() of a build without CUDA
FIX = (
    "rebuild it with its CUDA ops: on a GPU node `MMCV_REBUILD=1 make install`; on a node without one "
    "`FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST='<the GPUs' compute capabilities, e.g. 8.0;9.0>' MMCV_REBUILD=1 make "
    "install` (nvcc matching torch's CUDA needed); offline `MMCV_WHEEL=<a CUDA wheel> make install` "
    "(docs/detection.md)"
)


def compiled_cuda_version() -> str | None:
    """The CUDA version mmcv's ops were compiled with; None for a build without CUDA."""
    from mmcv.ops import get_compiling_cuda_version

    version = get_compiling_cuda_version()
    return None if version == NOT_COMPILED else version


def cuda_ops_problem(device: str) -> str | None:
    """Why a run on ``device`` cannot use mmcv's ops (a CUDA device, ops built without CUDA), or None."""
    if not device.startswith("cuda") or compiled_cuda_version() is not None:
        return None
    return (
        f"the run would train on {device}, but the installed mmcv's ops (nms, RoIAlign) were built without "
        f"CUDA: it would stop at its first evaluation (SSD) or iteration (Mask R-CNN). {FIX}"
    )
