"""Reading what mmengine hands a hook after a training iteration (the model's log variables)."""

from __future__ import annotations

from typing import Any

import torch


def scalars(outputs: Any) -> dict[str, float]:
    """The model's scalar log variables (``loss`` = the total, ``loss_cls``, ``error``, ...) as floats."""
    if not isinstance(outputs, dict):
        return {}
    out = {}
    for key, value in outputs.items():
        if torch.is_tensor(value) and value.numel() == 1:
            out[key] = float(value.detach().float())
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = float(value)
    return out


def batch_size(data_batch: Any) -> int:
    """Images in this process's batch: mmdet's ``{"inputs": [...]}``, a collated ``[images, labels]``, or
    the sample indices of a training set held on the device (``data.on_device``: a 1-d tensor)."""
    if isinstance(data_batch, dict) and "inputs" in data_batch:
        return len(data_batch["inputs"])
    if torch.is_tensor(data_batch) and data_batch.dim() == 1:
        return len(data_batch)
    if isinstance(data_batch, (list, tuple)) and data_batch and hasattr(data_batch[0], "__len__"):
        return len(data_batch[0])
    return 0


def current_lr(runner: Any) -> float:
    """The LR of the optimizer's first parameter group, read from the optimizer itself."""
    try:
        return float(runner.optim_wrapper.optimizer.param_groups[0]["lr"])
    except (AttributeError, IndexError, KeyError, TypeError):
        return float("nan")
