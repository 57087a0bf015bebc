"""The paper's detectors as mmdet's own configs plus the project's changes: ``configs/mmdet/<model>.py``.

Each model is one short mmengine config file that inherits mmdetection's shipped config (``_base_ =
['mmdet::...']``, resolved offline from the mmdet wheel) and states only what the paper's model changes,
with a header saying what differs from mmdet's and why (:func:`describe_differences`;
``python -m pws.detect.models ssd_vgg16 [--full]`` prints it, or the whole resolved config):

===================  =====================================  =================================================
model                file in ``configs/mmdet/``             inherits
===================  =====================================  =================================================
ssd_vgg16            ``ssd320_vgg16.py``                    ``mmdet::pascal_voc/ssd300_voc0712.py``
ssd_r50              ``ssd320_r50.py``                      ``ssd320_vgg16.py``
mask_rcnn_r50_fpn    ``mask_rcnn_r50_fpn.py``               ``mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py``
(neck_heads=method)  ``mask_rcnn_r50_fpn_method_heads.py``  ``mask_rcnn_r50_fpn.py`` (a 4-conv box head)
===================  =====================================  =================================================

:func:`model_config` loads a file and sets what a run chooses about the model: the normalization method
(:meth:`pws.nn.NormMethod.mmcv_cfgs`: pws, wn, none put that conv, with its bias, into every conv of the
backbone and of SSD's extra layers and no norm anywhere; bn, gn, in, ln, sn a plain conv followed by that
norm; SSD's prediction convs stay plain, as in mmdet and the paper's SSD), the number of classes, SSD's
anchors for the input size and data format (:func:`ssd_anchor_generator`), the pipelines' resize, the
transforms left out of SSD's training pipeline (option ``drop_transforms``), the test score threshold and a
local backbone checkpoint (never a download).
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from pws.detect.widths import CHANNEL_MULTIPLE, HEAD_NORMS, scaled_channels
from pws.models.resnet50 import io_norm_default
from pws.nn.factory import NormMethod, as_method

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "mmdet"
# model.neck_heads=method: the file with heads that take the method (Mask R-CNN's 4-conv box head)
METHOD_HEADS_FILES = {"mask_rcnn_r50_fpn": "mask_rcnn_r50_fpn_method_heads.py"}
HYDRA_MODELS = CONFIG_DIR.parent / "model"  # configs/model/<name>.yaml: a run's model group
CONFIG_FILES = {
    "ssd_vgg16": "ssd320_vgg16.py",
    "ssd_r50": "ssd320_r50.py",
    "mask_rcnn_r50_fpn": "mask_rcnn_r50_fpn.py",
}
# The keys of configs/model/<name>.yaml that are not model_config's options; every other key is one.
MODEL_KEYS = ("name", "input_size", "test_score_thr", "description")
NECK_HEADS = ("plain", "method")
LAYER_NORM_CFG = NormMethod("ln").mmcv_cfgs()[1]  # LN over (C, H, W): after FPN convs, ResNet's stem

# SSD's anchor boxes per level as fractions of the input size (SSD's rule, mmdet's SSDAnchorGenerator):
# levels 2..6 evenly over basesize_ratio_range, level 1 below it.
SSD_ANCHORS = {
    "voc": {"basesize_ratio_range": (0.2, 0.9), "first_level": (0.1, 0.2)},
    "coco": {"basesize_ratio_range": (0.15, 0.9), "first_level": (0.07, 0.15)},
}


def config_path(name: str, neck_heads: str = "plain") -> Path:
    """The config file of a model (``neck_heads="method"``: its variant whose FPN and heads take the method,
    :data:`METHOD_HEADS_FILES`); ValueError naming the models for an unknown one."""
    if name not in CONFIG_FILES:
        raise ValueError(f"unknown detection model {name!r}; choose one of {', '.join(CONFIG_FILES)}")
    return CONFIG_DIR / (METHOD_HEADS_FILES[name] if neck_heads == "method" else CONFIG_FILES[name])


@functools.cache
def model_options(name: str) -> tuple[str, ...]:
    """The options ``name`` takes: the keys of its Hydra file ``configs/model/<name>.yaml`` (the one place
    that states them, with their defaults) but :data:`MODEL_KEYS`."""
    config_path(name)  # an unknown model: ValueError naming the models
    keys = OmegaConf.load(HYDRA_MODELS / f"{name}.yaml").keys()
    return tuple(str(k) for k in keys if k not in MODEL_KEYS)


def check_options(name: str, options: Mapping[str, Any]) -> None:
    """ValueError for a model option the model does not take (:func:`model_options`), or a bad value."""
    allowed = model_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} of model {name}; allowed: {', '.join(allowed)}")
    if options.get("head_norm", "none") not in HEAD_NORMS:
        raise ValueError(f"model.head_norm must be one of {HEAD_NORMS}, got {options['head_norm']!r}")
    dropped = options.get("drop_transforms") or []
    if not (isinstance(dropped, (list, tuple)) and all(isinstance(t, str) for t in dropped)):
        raise ValueError(f"model.drop_transforms must be a list of mmdet transform names, got {dropped!r}")
    if options.get("neck_heads", "plain") not in NECK_HEADS:
        raise ValueError(f"model.neck_heads must be 'plain' or 'method', got {options['neck_heads']!r}")
    _check_width(options)


def _check_width(options: Mapping[str, Any]) -> float:
    width = options.get("width")
    if width is None:
        return 1.0
    try:
        value = float(width)
    except (TypeError, ValueError):
        value = math.nan
    if not (0.0 < value <= 1.0):
        raise ValueError(f"model.width must be in (0, 1] (1: the paper's channels), got {width!r}")
    return value


def load_config(name: str, neck_heads: str = "plain") -> dict[str, Any]:
    """The model's config file (:func:`config_path`) as mmengine resolves it (mmdet's config merged with
    ours), as plain dicts.

    Imports :mod:`pws.detect.registry` (the file's ``custom_imports``), hence mmdet.
    """
    from mmengine.config import Config

    return Config.fromfile(str(config_path(name, neck_heads))).to_dict()


def describe_differences(name: str) -> list[str]:
    """The "Differences from ..." items of the model's config file header, one string each."""
    items: list[str] = []
    listing = False
    for line in config_path(name).read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line[1:].strip()
        if text.startswith("Differences from"):
            listing = True
        elif listing and text.startswith("- "):
            items.append(text[2:])
        elif listing and items and text and line.startswith("#   "):
            items[-1] += " " + text
        else:
            listing = False
    return items


def model_config(
    name: str,
    method: NormMethod | str | Mapping[str, Any],
    *,
    num_classes: int,
    data_format: str = "voc",
    input_size: int | list[int] | None = None,
    score_thr: float | None = None,
    **options: Any,
) -> dict[str, Any]:
    """The whole mmengine config of the model's file with the run's model choices set (see the module
    docstring); ``options`` are the model's (:func:`model_options`). ``input_size``: SSD's square side, Mask
    R-CNN's keep-ratio scale, set in ``train_pipeline``/``test_pipeline`` (which build_config puts into the
    datasets); None keeps the file's."""
    check_options(name, options)
    method = as_method(method)
    cfg = load_config(name, options.get("neck_heads", "plain"))
    model = cfg["model"]
    if is_vgg(model):
        conv, norm = method.mmcv_cfgs()
        model["backbone"].update(conv_cfg=conv, norm_cfg=norm, init_cfg=_pretrained(options))
        if "l2_norm_scale" in options:
            model["neck"]["l2_norm_scale"] = options["l2_norm_scale"]
    else:
        _resnet(model["backbone"], method, options)
    if is_single_stage(model):
        conv, norm = method.mmcv_cfgs()
        model["neck"].update(conv_cfg=conv, norm_cfg=norm)
        model["bbox_head"]["num_classes"] = num_classes
        model["bbox_head"]["prediction_norm"] = options.get("head_norm", "none")
        size = int(cfg["input_size"] if input_size is None else input_size)
        if size != cfg["input_size"] or data_format != "voc":  # the files' anchors: VOC's, at input_size
            model["bbox_head"]["anchor_generator"].update(ssd_anchor_generator(size, data_format))
            cfg["input_size"] = size
        scale = (size, size)
        test_cfg = model["test_cfg"]
    else:
        if options.get("neck_heads", "plain") == "method":
            _method_in_neck_and_heads(model, method, options.get("neck_heads_pws"))
        if options.get("head_norm", "none") == "layer":
            model["neck"]["norm_cfg"] = dict(LAYER_NORM_CFG)
        model["roi_head"]["bbox_head"]["num_classes"] = num_classes
        model["roi_head"]["mask_head"]["num_classes"] = num_classes
        scale = None if input_size is None else tuple(int(v) for v in input_size)
        test_cfg = model["test_cfg"]["rcnn"]
    width = _check_width(options)
    if width != 1.0:
        _narrow(model, width)
    if scale is not None:
        for pipeline in (cfg["train_pipeline"], cfg["test_pipeline"]):
            for step in pipeline:
                if step["type"] == "Resize":
                    step["scale"] = scale
    if score_thr is not None:
        test_cfg["score_thr"] = score_thr
    cfg["train_pipeline"] = _without_transforms(name, cfg["train_pipeline"], options.get("drop_transforms"))
    return cfg


def is_vgg(model: Mapping[str, Any]) -> bool:
    """Whether the config's backbone is SSD's VGG-16 (its convs take the method directly; else mmdet's
    ResNet, :func:`resnet_method_cfg`)."""
    return model["backbone"]["type"] == "NormSSDVGG"


def is_single_stage(model: Mapping[str, Any]) -> bool:
    """Whether the config's detector is single-stage (SSD: a ``bbox_head``; else Mask R-CNN's RPN and RoI
    heads)."""
    return "roi_head" not in model


def _without_transforms(name: str, pipeline: list[dict[str, Any]], dropped: list[str] | None) -> list[dict]:
    """The training ``pipeline`` without the transforms named in ``dropped``; ValueError naming the
    pipeline's transforms if one of them is not in it (a misspelt name must not be ignored)."""
    types = [step["type"] for step in pipeline]
    missing = sorted(set(dropped or []) - set(types))
    if missing:
        raise ValueError(f"model.drop_transforms: {missing} not in {name}'s training pipeline {types}")
    return [step for step in pipeline if step["type"] not in (dropped or [])]


def _narrow(model: dict[str, Any], width: float) -> None:
    """Every channel count of the model times ``width`` (:func:`scaled_channels`): the backbone (VGG's
    convs; ResNet's ``base_channels``, so each stage's), SSD's extra layers and head inputs, Mask R-CNN's
    FPN, RPN, RoI extractors and heads (their convs and the box head's FCs). Layers, strides, anchors and
    every other setting stay. SSD's extra levels round to twice the multiple (their first conv has half)."""

    def w(c: int, multiple: int = CHANNEL_MULTIPLE) -> int:
        return scaled_channels(c, width, multiple)

    backbone = model["backbone"]
    if is_vgg(model):
        backbone["width"] = width
        inputs = [w(512), w(1024)]
    else:  # mmdet's ResNet: stem and stage widths follow base_channels (64), outputs 4x base x 2^stage
        base = w(64)
        backbone["base_channels"] = base
        inputs = [4 * base * 2**i for i in range(4)]
    if is_single_stage(model):
        neck = model["neck"]
        inputs = inputs[len(inputs) - len(neck["in_channels"]) :]  # the stages the file's neck reads
        extra = [w(c, 2 * CHANNEL_MULTIPLE) for c in neck["out_channels"][len(neck["in_channels"]) :]]
        neck.update(in_channels=tuple(inputs), out_channels=tuple(inputs + extra))
        model["bbox_head"]["in_channels"] = tuple(inputs + extra)
        return
    fpn = w(model["neck"]["out_channels"])
    model["neck"].update(in_channels=inputs, out_channels=fpn)
    model["rpn_head"].update(in_channels=fpn, feat_channels=fpn)
    roi = model["roi_head"]
    for extractor in ("bbox_roi_extractor", "mask_roi_extractor"):
        roi[extractor]["out_channels"] = fpn
    box = roi["bbox_head"]
    box.update(in_channels=fpn, fc_out_channels=w(box.get("fc_out_channels", 1024)))
    if "conv_out_channels" in box:
        box["conv_out_channels"] = w(box["conv_out_channels"])
    roi["mask_head"].update(in_channels=fpn, conv_out_channels=w(roi["mask_head"]["conv_out_channels"]))


def resnet_method_cfg(method: NormMethod | str | Mapping[str, Any]) -> dict[str, Any]:
    """The backbone keys that put ``method`` into mmdet's ResNet-50 as Table 5's classifier has it: its
    ``conv_cfg``/``norm_cfg`` (NoNorm for none/wn/pws: mmdet's ResNet needs a norm) and, where Table 5's
    network has a LayerNorm after the stem (:func:`pws.models.resnet50.io_norm_default`: pws, wn, none),
    ``type='InputNormResNet'`` with that LayerNorm as ``stem_norm_cfg`` (:class:`pws.detect.backbones.
    InputNormResNet`). Table 5's LayerNorm at the output has no counterpart: the FPN reads all four stages."""
    method = as_method(method)
    conv, norm = method.mmcv_cfgs(norm_required=True)
    if norm is not None and norm["type"] == "BN":
        norm = {**norm, "requires_grad": True}
    keys: dict[str, Any] = dict(conv_cfg=conv, norm_cfg=norm)
    if io_norm_default(method) and not method.normalizes_outputs:
        keys.update(type="InputNormResNet", stem_norm_cfg=dict(LAYER_NORM_CFG))
    return keys


def _resnet(backbone: dict[str, Any], method: NormMethod, options: Mapping[str, Any]) -> None:
    """mmdet's ResNet with the method (:func:`resnet_method_cfg`); with a local checkpoint, mmdet's start:
    stage 1 frozen, BN in eval mode (``frozen_stages``/``norm_eval`` override both)."""
    backbone.update(resnet_method_cfg(method))
    init_cfg = _pretrained(options)
    if init_cfg is not None:
        backbone.update(init_cfg=init_cfg, frozen_stages=1, norm_eval=method.method == "bn")
    for key in ("frozen_stages", "norm_eval"):
        if options.get(key) is not None:
            backbone[key] = options[key]


def _method_in_neck_and_heads(
    model: dict[str, Any], method: NormMethod, neck_heads_pws: Mapping[str, Any] | None
) -> None:
    """The method also in the FPN, the 4-conv box head of ``mask_rcnn_r50_fpn_method_heads.py`` and the mask
    head, as mmdet's ``gn+ws/mask-rcnn_r50_fpn_gn-ws-all_2x_coco.py``; PWS there with gamma 1e-1 in "equiv"
    mode (the authors'; ``neck_heads_pws``), the backbone's other options. FC layers and the RPN conv stay
    plain."""
    if method.method == "pws":
        method = NormMethod(
            "pws", **{**method.options, "gamma": 0.1, "gamma_mode": "equiv", **(neck_heads_pws or {})}
        )
    conv, norm = method.mmcv_cfgs()
    model["neck"].update(conv_cfg=conv, norm_cfg=norm)
    for head in ("bbox_head", "mask_head"):  # the box head: the file's Shared4Conv1FCBBoxHead
        model["roi_head"][head].update(conv_cfg=conv, norm_cfg=norm)


def _pretrained(options: Mapping[str, Any]) -> dict[str, Any] | None:
    """``init_cfg`` for ``options['backbone_checkpoint']``, a local file (never a download); None without."""
    checkpoint = options.get("backbone_checkpoint")
    if checkpoint is None:
        return None
    path = Path(checkpoint).expanduser()
    if "://" in str(checkpoint) or not path.is_file():
        raise FileNotFoundError(
            f"backbone checkpoint {checkpoint!r} is not a local file; nothing is downloaded: give the path "
            f"of a checkpoint on disk (e.g. a torchvision ResNet-50 state dict saved with torch.save)"
        )
    return dict(type="Pretrained", checkpoint=str(path.resolve()))


# ------------------------------------------------------------------------------------------ SSD anchors


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
            f"SSD needs an input of at least 257 pixels (its last feature map is a valid 3x3 conv of a "
            f"3x3 map), got {input_size}"
        )
    return sizes


def ssd_anchor_generator(input_size: int, anchors: str = "voc") -> dict[str, Any]:
    """mmdet ``SSDAnchorGenerator`` config for any input size (mmdet's rule knows only 300 and 512).

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
    return dict(
        type="SSDAnchorGenerator",
        scale_major=False,
        input_size=input_size,
        basesize_ratio_range=spec["basesize_ratio_range"],
        min_sizes=min_sizes,
        max_sizes=max_sizes,
        strides=[round(input_size / f) for f in ssd_feature_sizes(input_size)],
        ratios=[[2], [2, 3], [2, 3], [2, 3], [2], [2]],
    )


def main(argv: list[str] | None = None) -> None:
    """``python -m pws.detect.models [MODEL ...] [--full]``: each model's differences from mmdet's config,
    or (``--full``) the whole config mmengine resolves from its file."""
    args = sys.argv[1:] if argv is None else argv
    names = [a for a in args if not a.startswith("-")] or list(CONFIG_FILES)
    for name in names:
        print(f"{name}: {config_path(name)}")
        if "--full" in args:
            from mmengine.config import Config

            print(Config.fromfile(str(config_path(name))).pretty_text)
        else:
            print("".join(f"  - {item}\n" for item in describe_differences(name)))


if __name__ == "__main__":
    main()
