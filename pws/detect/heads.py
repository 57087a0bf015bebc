"""mmdet 3.3.0's ``SSDHead`` with its inference bug worked around (no edit to mmdetection).

``SSDHead.__init__`` skips ``AnchorHead.__init__`` and never sets ``self.loss_cls`` (SSD's classification
loss is computed inline: cross-entropy with hard negative mining in ``loss_by_feat_single``). Inference then
fails in ``BaseDenseHead._predict_by_feat_single``, which asks
``getattr(self.loss_cls, 'custom_cls_channels', False)``: ``'SSDHead' object has no attribute 'loss_cls'``
(reported upstream several times, never fixed in 3.x). ``FixedSSDHead`` answers that question -- "no custom
class channels" -- and changes nothing else: training, the loss and the predictions are mmdet's.
"""

from __future__ import annotations

from typing import Any

from mmdet.models.dense_heads import SSDHead
from mmdet.registry import MODELS


class _InlineSSDLoss:
    """Stands in for the loss module SSDHead does not have: it has no custom class channels."""

    custom_cls_channels = False
    use_sigmoid = False

    def __repr__(self) -> str:
        return "InlineSSDLoss(cross-entropy with hard negative mining, computed in SSDHead.loss_by_feat)"


@MODELS.register_module(force=True)
class FixedSSDHead(SSDHead):
    """``SSDHead`` usable for validation and testing under mmdet 3.3.0 (same arguments)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not hasattr(self, "loss_cls"):
            self.loss_cls = _InlineSSDLoss()
