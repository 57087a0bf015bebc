"""A classification ResNet-50 run as an mmdet ResNet-50 backbone checkpoint (Table 3 starts from Table 5).

The paper: "For Mask R-CNN we use pretrained model" -- the authors started their Mask R-CNN from their own
ImageNet ResNet-50 of the same method. :func:`export_backbone` reads a classification run's newest
checkpoint (``pws.models.resnet50``, torchvision's names under the model's ``net.``), renames its keys to
mmdet's ``ResNet`` layout for the same method (``bn1`` -> the name mmcv's ``build_norm_layer`` gives the
method's norm: ``bn1``, ``gn1``, ``in1``, ...) and writes ``{"state_dict": ..., "meta": ...}``, the file
mmdet's ``init_cfg=dict(type="Pretrained", checkpoint=...)`` loads (``model.backbone_checkpoint=<file>``).

Every tensor of the mmdet backbone must get a weight of the same shape (the method's convs with PWS's
alpha, its norms); what has no place in mmdet's ResNet is returned, named: the classifier (``fc``) and, for
the methods without an output norm, Table 5's LayerNorms at the input and the output (``bn1`` after the
stem, ``layer4.2.out_norm``), which mmdet's ResNet does not have.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pws.engine.checkpoints import latest_checkpoint, mmengine_checkpoints
from pws.runs.record import read_metrics

NORM_SLOT = re.compile(r"(^|\.)bn(\d)\.")


@dataclass
class Exported:
    """What :func:`export_backbone` wrote, and what it left out (with the reason)."""

    path: Path
    method: str
    mapped: int
    unmapped: dict[str, str] = field(default_factory=dict)  # classifier key -> why it has no place


def mmdet_resnet50(method: dict[str, Any]) -> torch.nn.Module:
    """mmdet's ResNet-50 with ``method``'s conv and norm, as the project's Mask R-CNN config builds it."""

    from mmdet.models.backbones import ResNet

    import pws.detect.registry  # noqa: F401  (the project's convs and norms)
    from pws.nn.methods import mmcv_cfgs

    conv_cfg, norm_cfg = mmcv_cfgs(method, norm_required=True)
    return ResNet(
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        conv_cfg=conv_cfg,
        norm_cfg=norm_cfg,
        norm_eval=False,
        zero_init_residual=False,
        init_cfg=None,
    )


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
    abbr = backbone.norm1_name[:-1]  # mmcv's name of the method's norm: "bn", "gn", "in", ...
    mapped: dict[str, torch.Tensor] = {}
    unmapped: dict[str, str] = {}
    for key, value in state.items():
        name = key.removeprefix("net.")
        if name.startswith("fc."):
            unmapped[key] = "the classifier (mmdet's backbone ends at layer4)"
            continue
        if ".out_norm." in name:
            unmapped[key] = "Table 5's LayerNorm at the output: mmdet's ResNet has none"
            continue
        renamed = NORM_SLOT.sub(lambda m: f"{m.group(1)}{abbr}{m.group(2)}.", name)
        if renamed not in target:
            unmapped[key] = (
                "Table 5's LayerNorm at the input (after the stem): mmdet's ResNet has none"
                if name.startswith("bn1.")
                else "no tensor of this name in mmdet's ResNet-50"
            )
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
