"""The project's classifiers as an mmengine model (``Classifier``): the loss in training, the logits
for evaluation. The network itself is :func:`pws.models.classifiers.build_classifier` (the paper's nets,
built with the method's conv and norm)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.registry import MODELS

from pws.models.classifiers import build_classifier
from pws.nn.factory import NormMethod


@MODELS.register_module(name="Classifier", force=True)
class Classifier(BaseModel):
    """``arch`` (``plain_c``, ``resnet_cifar``, ``resnet50``) with ``norm`` (a method and its options).

    ``forward(images, labels, mode)``: ``"loss"`` returns the cross-entropy (``loss``) and the batch's
    top-1 error in % (``error``, logged, not optimized); ``"predict"`` returns ``(logits, labels)`` for
    :class:`pws.classify.metric.ClassificationError`. ``data_preprocessor``: mmengine's (None: its
    ``BaseDataPreprocessor``; ``data.on_device``: :class:`pws.classify.on_device.OnDeviceCIFARPreprocessor`).
    """

    def __init__(
        self,
        arch: str,
        norm: dict[str, Any],
        num_classes: int,
        channels_last: bool = False,
        data_preprocessor: dict[str, Any] | None = None,
        **arch_kwargs: Any,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        self.net = build_classifier(arch, NormMethod.from_config(norm), num_classes, **arch_kwargs)
        self.channels_last = channels_last
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor | None = None, mode: str = "tensor") -> Any:
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        logits = self.net(inputs)
        if mode == "tensor":
            return logits
        assert labels is not None
        if mode == "loss":
            loss = F.cross_entropy(logits.float(), labels)
            with torch.no_grad():
                error = 100.0 * (logits.argmax(dim=1) != labels).float().mean()
            return {"loss": loss, "error": error}
        if mode == "predict":
            return [(logits.detach().float(), labels.detach())]
        raise ValueError(f"mode must be tensor, loss or predict, got {mode!r}")
