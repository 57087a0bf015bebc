"""Top-1 error (%) and mean cross-entropy on the test set, summed over all ranks."""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from pws.classify.distributed import DistContext


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    ctx: DistContext,
    *,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> dict[str, float]:
    """``{"test_error": %, "test_loss": mean CE, "test_images": n}`` over the whole test set.

    The model is put in eval mode and back into its previous mode afterwards. Each rank evaluates its
    share of the test set (no padding), and the counts are summed across ranks.
    """
    was_training = model.training
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=ctx.device)  # loss sum, correct, count
    use_amp = amp_dtype is not None
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    try:
        for batch, target in loader:
            images = batch.to(ctx.device, non_blocking=True).contiguous(memory_format=memory_format)
            labels = target.to(ctx.device, non_blocking=True)
            with torch.autocast(device_type=ctx.device.type, dtype=amp_dtype) if use_amp else nullcontext():
                logits = model(images).float()
            totals[0] += F.cross_entropy(logits, labels, reduction="sum").double()
            totals[1] += (logits.argmax(dim=1) == labels).sum().double()
            totals[2] += labels.numel()
    finally:
        model.train(was_training)
    ctx.all_reduce_sum(totals)
    loss_sum, correct, count = totals.tolist()
    if count == 0:
        raise RuntimeError("the test set is empty")
    return {
        "test_error": 100.0 * (1.0 - correct / count),
        "test_loss": loss_sum / count,
        "test_images": int(count),
    }
