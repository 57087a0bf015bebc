"""Top-1 and top-5 error (%) and the mean cross-entropy of the test set, as an mmengine metric."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.registry import METRICS


def topk_errors(logits: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """``{k: % of images whose label is not among the k highest logits}`` (k capped at the class count)."""
    out = {}
    for k in ks:
        top = logits.topk(min(k, logits.shape[1]), dim=1).indices
        hit = (top == labels[:, None]).any(dim=1).float()
        out[k] = 100.0 * (1.0 - float(hit.mean()))
    return out


@METRICS.register_module(name="ClassificationError", force=True)
class ClassificationError(BaseMetric):
    """``top1_error``, ``top5_error`` (%) and ``test_loss`` over the whole evaluation set (all ranks)."""

    default_prefix = None

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        for logits, labels in data_samples:
            self.results.append((logits.cpu(), labels.cpu()))

    def compute_metrics(self, results: list[Any]) -> dict[str, float]:
        logits = torch.cat([r[0] for r in results])
        labels = torch.cat([r[1] for r in results])
        errors = topk_errors(logits, labels)
        return {
            "top1_error": errors[1],
            "top5_error": errors[5],
            "test_loss": float(F.cross_entropy(logits, labels)),
            "test_images": float(labels.numel()),
        }
