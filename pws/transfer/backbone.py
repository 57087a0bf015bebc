"""A classification ResNet-50 run as an mmdet ResNet-50 backbone checkpoint (Table 3 starts from Table 5).

The paper: "For Mask R-CNN we use pretrained model" -- the authors started their Mask R-CNN from their own
ImageNet ResNet-50 of the same method. :func:`export_backbone` reads a classification run's newest
checkpoint (``pws.models.resnet50``, torchvision's names under the model's ``net.``), renames its keys to
mmdet's ``ResNet`` layout for the same method (``bn1`` -> the name mmcv's ``build_norm_layer`` gives the
method's norm: ``bn1``, ``gn1``, ``in1``, ...) and writes ``{"state_dict": ..., "meta": ...}``, the file
mmdet's ``init_cfg=dict(type="Pretrained", checkpoint=...)`` loads (``model.backbone_checkpoint=<file>``).

Every tensor of the mmdet backbone must get a weight of the same shape (the method's convs with PWS's
alpha, its norms). For the methods without an output norm (pws, wn, none) the backbone is
:class:`pws.detect.backbones.InputNormResNet`, which keeps Table 5's LayerNorm after the stem (``bn1`` ->
``ln1``), so stages 1-3 compute what the classifier computed. What has no place in the backbone is returned,
named: the classifier (``fc``) and Table 5's LayerNorm at the output (``layer4.2.out_norm``, before the last
ReLU): the detector's FPN reads every stage, not the classifier's pooled output, and normalizes what its
heads read by its own means (``model.head_norm``, ``model.neck_heads``; docs/fidelity.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pws.detect.models import resnet_method_cfg
from pws.engine.checkpoints import latest_checkpoint, mmengine_checkpoints
from pws.records.metrics_file import read_metrics

BLOCK_NORM_SLOT = re.compile(r"\.bn(\d)\.")  # a bottleneck's bn1..bn3


@dataclass
class Exported:
    """What :func:`export_backbone` wrote, and what it left out (with the reason)."""

    path: Path
    method: str
    mapped: int
    unmapped: dict[str, str] = field(default_factory=dict)  # classifier key -> why it has no place


def mmdet_resnet50(method: dict[str, Any]) -> torch.nn.Module:
    """mmdet's ResNet-50 with ``method`` as the project's detection configs put it there
    (:func:`pws.detect.models.resnet_method_cfg`), nothing frozen and no init."""
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope

    import pws.detect.registry  # noqa: F401  (imports mmdet: only this export needs it, not a classification run)

    cfg = dict(type="ResNet", depth=50, num_stages=4, out_indices=(0, 1, 2, 3), frozen_stages=-1,
               norm_eval=False, zero_init_residual=False, init_cfg=None)  # fmt: skip
    with DefaultScope.overwrite_default_scope("mmdet"):  # whichever Runner ran last in this process
        return MODELS.build({**cfg, **resnet_method_cfg(method)})


def export_backbone(run_dir: str | Path, out: str | Path) -> Exported:
    """Write the mmdet backbone checkpoint of the classification run in ``run_dir`` to ``out``."""
    run_dir = Path(run_dir)
    record = read_metrics(run_dir, strict=True) or {}
    if record.get("model") != "resnet50":
        raise ValueError(f"{run_dir}: not a ResNet-50 classification run (model {record.get('model')!r})")
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise FileNotFoundError(f"{run_dir}: no checkpoint (last_checkpoint) to export")
    with mmengine_checkpoints():
        state = torch.load(checkpoint, map_location="cpu")["state_dict"]
    norm = record.get("plan", {}).get("norm") or {"method": record.get("method")}
    backbone = mmdet_resnet50(dict(norm))
    target = backbone.state_dict()
    abbr = backbone.layer1[0].norm1_name[:-1]  # mmcv's name of the blocks' norm: "bn", "gn", "nonorm", ...
    stem = backbone.norm1_name  # the stem's norm: the blocks' (bn1, gn1, ...) or Table 5's LayerNorm (ln1)
    mapped: dict[str, torch.Tensor] = {}
    unmapped: dict[str, str] = {}
    for key, value in state.items():
        name = key.removeprefix("net.")
        if name.startswith("fc."):
            unmapped[key] = "the classifier (mmdet's backbone ends at layer4)"
            continue
        if ".out_norm." in name:
            unmapped[key] = "Table 5's LayerNorm at the output: the detector's FPN reads every stage instead"
            continue
        if name.startswith("bn1."):
            renamed = f"{stem}.{name.removeprefix('bn1.')}"
        else:
            renamed = BLOCK_NORM_SLOT.sub(lambda m: f".{abbr}{m.group(1)}.", name)
        if renamed not in target:
            unmapped[key] = "no tensor of this name in mmdet's ResNet-50"
            continue
        if target[renamed].shape != value.shape:
            raise ValueError(
                f"{key}: shape {tuple(value.shape)}, mmdet's {renamed}: {tuple(target[renamed].shape)}"
            )
        mapped[renamed] = value
    missing = sorted(set(target) - set(mapped) - {k for k in target if k.endswith("num_batches_tracked")})
    if missing:
        raise ValueError(f"{run_dir}: mmdet's ResNet-50 tensors without a weight in the run: {missing[:8]}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"source": str(checkpoint), "method": norm, "unmapped": unmapped}
    torch.save({"state_dict": mapped, "meta": meta}, out)
    return Exported(out, str(norm.get("method")), len(mapped), unmapped)
