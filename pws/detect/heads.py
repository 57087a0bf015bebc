"""mmdet 3.3.0's ``SSDHead`` with its inference bug worked around (no edit to mmdetection), and the authors'
optional LayerNorm of the prediction maps.

``SSDHead.__init__`` skips ``AnchorHead.__init__`` and never sets ``self.loss_cls`` (SSD's classification
loss is computed inline: cross-entropy with hard negative mining in ``loss_by_feat_single``). Inference then
fails in ``BaseDenseHead._predict_by_feat_single``, which asks
``getattr(self.loss_cls, 'custom_cls_channels', False)``: ``'SSDHead' object has no attribute 'loss_cls'``
(reported upstream several times, never fixed in 3.x). ``FixedSSDHead`` answers that question -- "no custom
class channels" -- and, with ``prediction_norm="none"``, changes nothing else: training, the loss and the
predictions are mmdet's.
"""

from __future__ import annotations

from typing import Any

import torch
from mmdet.models.dense_heads import SSDHead
from mmdet.registry import MODELS
from torch import Tensor, nn

from pws.detect.widths import HEAD_NORMS


class _InlineSSDLoss:
    """Stands in for the loss module SSDHead does not have: it has no custom class channels."""

    custom_cls_channels = False
    use_sigmoid = False

    def __repr__(self) -> str:
        return "InlineSSDLoss(cross-entropy with hard negative mining, computed in SSDHead.loss_by_feat)"


@MODELS.register_module(force=True)
class FixedSSDHead(SSDHead):
    """``SSDHead`` usable for validation and testing under mmdet 3.3.0 (same arguments), plus
    ``prediction_norm``: ``"none"`` (mmdet's head, the paper's) or ``"layer"``, the authors' SSD code option
    ``last_layer_norm=LayerNorm``: every class and box prediction map goes through a
    :class:`PredictionLayerNorm` (one per map), so the logits keep a unit scale whatever the scale of the
    features (an unnormalized backbone's upper maps can start, or shrink, to a tiny std)."""

    def __init__(self, *args: Any, prediction_norm: str = "none", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not hasattr(self, "loss_cls"):
            self.loss_cls = _InlineSSDLoss()
        if prediction_norm not in HEAD_NORMS:
            raise ValueError(f"prediction_norm must be one of {HEAD_NORMS}, got {prediction_norm!r}")
        self.prediction_norm = prediction_norm
        if prediction_norm == "layer":
            self.cls_norms = nn.ModuleList(PredictionLayerNorm() for _ in self.cls_convs)
            self.reg_norms = nn.ModuleList(PredictionLayerNorm() for _ in self.reg_convs)

    def forward(self, x: tuple[Tensor, ...]) -> tuple[list[Tensor], list[Tensor]]:
        """mmdet's class scores and box deltas per level, each map normalized with ``prediction_norm``."""
        cls_scores, bbox_preds = super().forward(x)
        if self.prediction_norm == "none":
            return cls_scores, bbox_preds
        return (
            [norm(t) for norm, t in zip(self.cls_norms, cls_scores, strict=True)],
            [norm(t) for norm, t in zip(self.reg_norms, bbox_preds, strict=True)],
        )


class PredictionLayerNorm(nn.Module):
    """``(P - E[P]) / sqrt(Var[P] + eps) + beta`` with the mean and biased variance of each image's whole
    prediction map ``P`` (over channels, height and width), ``eps = 1e-3`` and one learned shift ``beta``
    (init 0), no gain: the LayerNorm of the authors' SSD head (their TensorFlow ``layer_norm``)."""

    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps
        self.beta = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        var, mean = torch.var_mean(x, dim=(1, 2, 3), keepdim=True, correction=0)
        return (x - mean) * torch.rsqrt(var + self.eps) + self.beta
