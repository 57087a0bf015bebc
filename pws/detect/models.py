"""mmdet model configs for the paper's detectors, with the normalization method mapped to conv_cfg/norm_cfg.

Mapping of a :class:`pws.nn.NormMethod` (the ``norm`` node of the app) onto mmcv configs
(:func:`method_cfgs`):

=======  ==================================================  ===============================
method   conv_cfg                                            norm_cfg
=======  ==================================================  ===============================
pws      ``PWS`` (gamma, fan_in_scale, learn_alpha,           none (``NoNorm`` where a model
         gamma_mode, alpha_init), with bias (beta)            insists on one: mmdet's ResNet)
wn       ``WN`` (g_init), with bias                           none / ``NoNorm``
none     ``HeConv`` (plain, He fan-in), with bias             none / ``NoNorm``
bn       ``HeConv``, no bias                                  ``BN`` (eps, momentum)
gn       ``HeConv``, no bias                                  ``GN`` (num_groups, eps)
in       ``HeConv``, no bias                                  ``IN`` (eps, affine)
ln       ``HeConv``, no bias                                  ``LN2d`` (eps): GroupNorm(1, C)
sn       ``HeConv``, no bias                                  ``SN`` (eps, momentum)
=======  ==================================================  ===============================

So for pws, wn and none every conv of the backbone and of SSD's extra layers uses that method and no BN
remains (the paper: "remove all BN layers and replace all conv layers in the backbone with PWS"); for the
output norms the conv is plain and followed by that norm. SSD's prediction convs (the head) stay plain, as
in mmdet and in the paper's SSD.

Builders: :func:`ssd_vgg16` (Tables 1-3, SSD320), :func:`ssd_r50` (Table 2's ResNet-50 rows) and
:func:`mask_rcnn_r50_fpn` (Table 3). They return plain dicts (mmengine model configs); nothing here imports
mmdet, and nothing is downloaded: ``init_cfg`` is ``None`` or a local checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pws.nn.factory import NormMethod, as_method
from pws.nn.methods import mmcv_cfgs as method_cfgs

# ImageNet mean in RGB (mmdet's SSD uses std 1, its Mask R-CNN the ImageNet std).
MEAN_RGB = [123.675, 116.28, 103.53]
STD_RGB = [58.395, 57.12, 57.375]

# SSD's anchor boxes per level as fractions of the input size (SSD's rule, mmdet's SSDAnchorGenerator):
# levels 2..6 evenly from basesize_ratio_range, level 1 below it.
SSD_ANCHORS = {
    "voc": {"basesize_ratio_range": (0.2, 0.9), "first_level": (0.1, 0.2)},
    "coco": {"basesize_ratio_range": (0.15, 0.9), "first_level": (0.07, 0.15)},
}
SSD_ASPECT_RATIOS = [[2], [2, 3], [2, 3], [2, 3], [2], [2]]


# ------------------------------------------------------------------------------------------------ SSD


def ssd_feature_sizes(input_size: int) -> list[int]:
    """Side of SSD's six feature maps for a square input (320 -> 40, 20, 10, 5, 3, 1).

    VGG-16 and ResNet-50 both give strides 8 and 16 (VGG: ceil-mode pools) and then stride 32 (ResNet's
    C5 or the first extra layer), followed by stride-2 and two valid 3x3 extra layers.
    """
    s8 = math.ceil(input_size / 8)
    s16 = math.ceil(s8 / 2)
    s32 = (s16 - 1) // 2 + 1
    s64 = (s32 - 1) // 2 + 1
    sizes = [s8, s16, s32, s64, s64 - 2, s64 - 4]
    if sizes[-1] < 1:
        raise ValueError(
            f"SSD needs an input of at least 288 pixels (its last feature map is a valid 3x3 conv of a "
            f"3x3 map), got {input_size}"
        )
    return sizes


def ssd_anchor_generator(input_size: int, anchors: str = "voc") -> dict[str, Any]:
    """mmdet ``SSDAnchorGenerator`` config for any input size (the shipped rule knows only 300 and 512).

    Sizes follow SSD's rule: levels 2..6 evenly spaced over ``basesize_ratio_range`` of the input (VOC:
    0.2-0.9, COCO: 0.15-0.9), level 1 at 0.1-0.2 (VOC) or 0.07-0.15 (COCO); at 320 on VOC the anchor
    ``min_sizes`` are 32, 64, 118, 172, 227, 281. Strides are the input over each feature map side.
    """
    if anchors not in SSD_ANCHORS:
        raise ValueError(f"unknown SSD anchor setting {anchors!r}; choose one of {sorted(SSD_ANCHORS)}")
    spec = SSD_ANCHORS[anchors]
    lo, hi = (round(r * 100) for r in spec["basesize_ratio_range"])
    step = (hi - lo) // 4
    min_sizes = [int(input_size * spec["first_level"][0])]
    max_sizes = [int(input_size * spec["first_level"][1])]
    for ratio in range(lo, hi + 1, step):
        min_sizes.append(int(input_size * ratio / 100))
        max_sizes.append(int(input_size * (ratio + step) / 100))
    strides = [round(input_size / f) for f in ssd_feature_sizes(input_size)]
    return dict(
        type="SSDAnchorGenerator",
        scale_major=False,
        input_size=input_size,
        min_sizes=min_sizes,
        max_sizes=max_sizes,
        strides=strides,
        ratios=SSD_ASPECT_RATIOS,
    )


def _ssd(
    backbone: dict[str, Any],
    neck: dict[str, Any],
    *,
    num_classes: int,
    input_size: int,
    anchors: str,
    std: Sequence[float],
    score_thr: float,
) -> dict[str, Any]:
    return dict(
        type="SingleStageDetector",
        data_preprocessor=dict(
            type="DetDataPreprocessor", mean=MEAN_RGB, std=list(std), bgr_to_rgb=True, pad_size_divisor=1
        ),
        backbone=backbone,
        neck=neck,
        bbox_head=dict(
            type="FixedSSDHead",
            in_channels=tuple(neck["out_channels"]),
            num_classes=num_classes,
            anchor_generator=ssd_anchor_generator(input_size, anchors),
            bbox_coder=dict(
                type="DeltaXYWHBBoxCoder", target_means=[0.0, 0.0, 0.0, 0.0], target_stds=[0.1, 0.1, 0.2, 0.2]
            ),
        ),
        train_cfg=dict(
            assigner=dict(
                type="MaxIoUAssigner",
                pos_iou_thr=0.5,
                neg_iou_thr=0.5,
                min_pos_iou=0.0,
                ignore_iof_thr=-1,
                gt_max_assign_all=False,
            ),
            sampler=dict(type="PseudoSampler"),
            smoothl1_beta=1.0,
            allowed_border=-1,
            pos_weight=-1,
            neg_pos_ratio=3,
            debug=False,
        ),
        test_cfg=dict(
            nms_pre=1000,
            nms=dict(type="nms", iou_threshold=0.45),
            min_bbox_size=0,
            score_thr=score_thr,
            max_per_img=200,
        ),
    )


def ssd_vgg16(
    method: NormMethod | str | dict[str, Any],
    *,
    num_classes: int,
    input_size: int = 320,
    anchors: str = "voc",
    score_thr: float = 0.02,
    l2_norm_scale: float | None = 20.0,
    backbone_checkpoint: str | None = None,
) -> dict[str, Any]:
    """SSD with the VGG-16 backbone (:class:`pws.detect.backbones.NormSSDVGG`), trained from scratch.

    Extra layers (mmdet's ``SSDNeck``) with the same conv/norm as the backbone: 1x1-256/3x3-512 s2,
    1x1-128/3x3-256 s2, 1x1-128/3x3-256 valid, 1x1-128/3x3-256 valid (the authors' blocks 6-9). mmdet's SSD
    preprocessing: RGB minus the ImageNet mean, std 1.
    """
    ssd_feature_sizes(input_size)
    conv_cfg, norm_cfg = method_cfgs(method)
    backbone = dict(
        type="NormSSDVGG", conv_cfg=conv_cfg, norm_cfg=norm_cfg, init_cfg=_pretrained(backbone_checkpoint)
    )
    neck = dict(
        type="SSDNeck",
        in_channels=(512, 1024),
        out_channels=(512, 1024, 512, 256, 256, 256),
        level_strides=(2, 2, 1, 1),
        level_paddings=(1, 1, 0, 0),
        l2_norm_scale=l2_norm_scale,
        conv_cfg=conv_cfg,
        norm_cfg=norm_cfg,
    )
    return _ssd(
        backbone,
        neck,
        num_classes=num_classes,
        input_size=input_size,
        anchors=anchors,
        std=[1.0, 1.0, 1.0],
        score_thr=score_thr,
    )


def _resnet50(
    method: NormMethod | str | dict[str, Any],
    *,
    out_indices: tuple[int, ...],
    checkpoint: str | None,
    frozen_stages: int | None,
    norm_eval: bool | None,
) -> dict[str, Any]:
    conv_cfg, norm_cfg = method_cfgs(method, norm_required=True)
    pretrained = checkpoint is not None
    if norm_cfg is not None and norm_cfg["type"] == "BN":
        norm_cfg = {**norm_cfg, "requires_grad": True}
    return dict(
        type="ResNet",
        depth=50,
        num_stages=4,
        out_indices=out_indices,
        frozen_stages=(1 if pretrained else -1) if frozen_stages is None else frozen_stages,
        conv_cfg=conv_cfg,
        norm_cfg=norm_cfg,
        norm_eval=(pretrained and as_method(method).method == "bn") if norm_eval is None else norm_eval,
        style="pytorch",
        # mmdet's default zeroes the last norm of each block, which only exists with an output norm, and
        # leaves most PWS layers without gradient at first: off for every method.
        zero_init_residual=False,
        init_cfg=_pretrained(checkpoint),
    )


def ssd_r50(
    method: NormMethod | str | dict[str, Any],
    *,
    num_classes: int,
    input_size: int = 320,
    anchors: str = "voc",
    score_thr: float = 0.02,
    backbone_checkpoint: str | None = None,
) -> dict[str, Any]:
    """SSD with a ResNet-50 backbone (Table 2's "ResNet-50" rows), from scratch.

    Feature maps C3, C4, C5 (512, 1024, 2048 channels; 40, 20, 10 at 320) and three extra layers
    (10 -> 5 -> 3 -> 1; 512, 256, 256 channels), so the six maps and the anchors equal SSD-VGG16's. The
    paper gives no more detail of this model; no L2Norm (it is there for VGG's conv4_3 scale). Input
    normalized with the ImageNet mean and std, as mmdet's ResNet detectors.
    """
    ssd_feature_sizes(input_size)
    conv_cfg, norm_cfg = method_cfgs(method)
    backbone = _resnet50(
        method, out_indices=(1, 2, 3), checkpoint=backbone_checkpoint, frozen_stages=None, norm_eval=None
    )
    neck = dict(
        type="SSDNeck",
        in_channels=(512, 1024, 2048),
        out_channels=(512, 1024, 2048, 512, 256, 256),
        level_strides=(2, 1, 1),
        level_paddings=(1, 0, 0),
        l2_norm_scale=None,
        conv_cfg=conv_cfg,
        norm_cfg=norm_cfg,
    )
    return _ssd(
        backbone,
        neck,
        num_classes=num_classes,
        input_size=input_size,
        anchors=anchors,
        std=STD_RGB,
        score_thr=score_thr,
    )


# ---------------------------------------------------------------------------------------- Mask R-CNN


def mask_rcnn_r50_fpn(
    method: NormMethod | str | dict[str, Any],
    *,
    num_classes: int = 80,
    neck_heads: str = "plain",
    neck_heads_pws: dict[str, Any] | None = None,
    backbone_checkpoint: str | None = None,
    frozen_stages: int | None = None,
    norm_eval: bool | None = None,
    score_thr: float = 0.05,
) -> dict[str, Any]:
    """Mask R-CNN R50-FPN (mmdet's ``mask-rcnn_r50_fpn``) with the method in the backbone.

    ``neck_heads``:

    * ``"plain"``: mmdet's FPN, ``Shared2FCBBoxHead`` and ``FCNMaskHead`` with plain convs, no norm;
    * ``"method"``: the method also in the FPN, the box head (``Shared4Conv1FCBBoxHead``, as mmdet's GN and
      GN+WS Mask R-CNN) and the mask head; the authors' PWS Mask R-CNN did this with gamma 1e-1 in "equiv"
      mode there (``neck_heads_pws``, default ``{"gamma": 0.1, "gamma_mode": "equiv"}``) and the backbone's
      gamma in the backbone. FC layers and the RPN conv stay plain.

    ``backbone_checkpoint``: a local file for the backbone (mmengine ``Pretrained`` init; keys as mmdet's
    ResNet, e.g. a torchvision ResNet-50 state dict); the paper started from an ImageNet model. With a
    checkpoint, stage 1 is frozen and BN (if any) kept in eval mode, as mmdet's config; without, nothing is
    frozen (``frozen_stages``/``norm_eval`` override both).
    """
    if neck_heads not in ("plain", "method"):
        raise ValueError(f"neck_heads must be 'plain' or 'method', got {neck_heads!r}")
    backbone = _resnet50(
        method,
        out_indices=(0, 1, 2, 3),
        checkpoint=backbone_checkpoint,
        frozen_stages=frozen_stages,
        norm_eval=norm_eval,
    )
    method = as_method(method)
    head_conv: dict[str, Any] | None = None
    head_norm: dict[str, Any] | None = None
    if neck_heads == "method":
        if method.method == "pws":
            options = {**method.options, **{"gamma": 0.1, "gamma_mode": "equiv", **(neck_heads_pws or {})}}
            head_conv, head_norm = method_cfgs(NormMethod("pws", **options))
        else:
            head_conv, head_norm = method_cfgs(method)
    bbox_head: dict[str, Any] = dict(
        in_channels=256,
        fc_out_channels=1024,
        roi_feat_size=7,
        num_classes=num_classes,
        bbox_coder=dict(
            type="DeltaXYWHBBoxCoder", target_means=[0.0, 0.0, 0.0, 0.0], target_stds=[0.1, 0.1, 0.2, 0.2]
        ),
        reg_class_agnostic=False,
        loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type="L1Loss", loss_weight=1.0),
    )
    if neck_heads == "method":
        bbox_head.update(
            type="Shared4Conv1FCBBoxHead", conv_out_channels=256, conv_cfg=head_conv, norm_cfg=head_norm
        )
    else:
        bbox_head["type"] = "Shared2FCBBoxHead"
    return dict(
        type="MaskRCNN",
        data_preprocessor=dict(
            type="DetDataPreprocessor",
            mean=MEAN_RGB,
            std=STD_RGB,
            bgr_to_rgb=True,
            pad_mask=True,
            pad_size_divisor=32,
        ),
        backbone=backbone,
        neck=dict(
            type="FPN",
            in_channels=[256, 512, 1024, 2048],
            out_channels=256,
            num_outs=5,
            conv_cfg=head_conv,
            norm_cfg=head_norm,
        ),
        rpn_head=dict(
            type="RPNHead",
            in_channels=256,
            feat_channels=256,
            anchor_generator=dict(
                type="AnchorGenerator", scales=[8], ratios=[0.5, 1.0, 2.0], strides=[4, 8, 16, 32, 64]
            ),
            bbox_coder=dict(
                type="DeltaXYWHBBoxCoder", target_means=[0.0, 0.0, 0.0, 0.0], target_stds=[1.0, 1.0, 1.0, 1.0]
            ),
            loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=True, loss_weight=1.0),
            loss_bbox=dict(type="L1Loss", loss_weight=1.0),
        ),
        roi_head=dict(
            type="StandardRoIHead",
            bbox_roi_extractor=dict(
                type="SingleRoIExtractor",
                roi_layer=dict(type="RoIAlign", output_size=7, sampling_ratio=0),
                out_channels=256,
                featmap_strides=[4, 8, 16, 32],
            ),
            bbox_head=bbox_head,
            mask_roi_extractor=dict(
                type="SingleRoIExtractor",
                roi_layer=dict(type="RoIAlign", output_size=14, sampling_ratio=0),
                out_channels=256,
                featmap_strides=[4, 8, 16, 32],
            ),
            mask_head=dict(
                type="FCNMaskHead",
                num_convs=4,
                in_channels=256,
                conv_out_channels=256,
                num_classes=num_classes,
                conv_cfg=head_conv,
                norm_cfg=head_norm,
                loss_mask=dict(type="CrossEntropyLoss", use_mask=True, loss_weight=1.0),
            ),
        ),
        train_cfg=dict(
            rpn=dict(
                assigner=dict(
                    type="MaxIoUAssigner",
                    pos_iou_thr=0.7,
                    neg_iou_thr=0.3,
                    min_pos_iou=0.3,
                    match_low_quality=True,
                    ignore_iof_thr=-1,
                ),
                sampler=dict(
                    type="RandomSampler", num=256, pos_fraction=0.5, neg_pos_ub=-1, add_gt_as_proposals=False
                ),
                allowed_border=-1,
                pos_weight=-1,
                debug=False,
            ),
            rpn_proposal=dict(
                nms_pre=2000, max_per_img=1000, nms=dict(type="nms", iou_threshold=0.7), min_bbox_size=0
            ),
            rcnn=dict(
                assigner=dict(
                    type="MaxIoUAssigner",
                    pos_iou_thr=0.5,
                    neg_iou_thr=0.5,
                    min_pos_iou=0.5,
                    match_low_quality=True,
                    ignore_iof_thr=-1,
                ),
                sampler=dict(
                    type="RandomSampler", num=512, pos_fraction=0.25, neg_pos_ub=-1, add_gt_as_proposals=True
                ),
                mask_size=28,
                pos_weight=-1,
                debug=False,
            ),
        ),
        test_cfg=dict(
            rpn=dict(
                nms_pre=1000, max_per_img=1000, nms=dict(type="nms", iou_threshold=0.7), min_bbox_size=0
            ),
            rcnn=dict(
                score_thr=score_thr,
                nms=dict(type="nms", iou_threshold=0.5),
                max_per_img=100,
                mask_thr_binary=0.5,
            ),
        ),
    )


def _pretrained(checkpoint: str | None) -> dict[str, Any] | None:
    """``init_cfg`` for a local checkpoint (never a download); None keeps the layers' own init."""
    if checkpoint is None:
        return None
    path = Path(checkpoint).expanduser()
    if "://" in str(checkpoint) or not path.is_file():
        raise FileNotFoundError(
            f"backbone checkpoint {checkpoint!r} is not a local file; nothing is downloaded: give the path "
            f"of a checkpoint on disk (e.g. a torchvision ResNet-50 state dict saved with torch.save)"
        )
    return dict(type="Pretrained", checkpoint=str(path.resolve()))


BUILDERS = {"ssd_vgg16": ssd_vgg16, "ssd_r50": ssd_r50, "mask_rcnn_r50_fpn": mask_rcnn_r50_fpn}
