"""The models built from configs/mmdet/*.py equal the ones the hand-written builders made."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from .conftest import require_stack

require_stack()

from mmdet.registry import MODELS  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402
from mmengine.config import ConfigDict  # noqa: E402

import pws.detect.registry  # noqa: E402, F401
from pws.detect import models as M  # noqa: E402
from pws.nn.factory import METHODS  # noqa: E402

register_all_modules(init_default_scope=True)


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items() if k != "_scope_"}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return x
    if isinstance(x, (int, float)):
        return float(x)
    return x


def _diff(a, b, path=""):
    out = []
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a:
                out.append(f"{path}.{k}: only new = {b[k]!r}")
            elif k not in b:
                out.append(f"{path}.{k}: only old = {a[k]!r}")
            else:
                out += _diff(a[k], b[k], f"{path}.{k}")
    elif a != b:
        out.append(f"{path}: old {a!r} new {b!r}")
    return out


def _structure(model: nn.Module):
    mods = [
        (n, type(m).__name__, repr(m) if not list(m.children()) else "") for n, m in model.named_modules()
    ]
    params = [(n, tuple(p.shape), p.requires_grad) for n, p in model.named_parameters()]
    bufs = [(n, tuple(b.shape)) for n, b in model.named_buffers()]
    return mods, params, bufs


CASES = [
    ("ssd_vgg16", dict(num_classes=20), {}),
    ("ssd_r50", dict(num_classes=20), {}),
    ("mask_rcnn_r50_fpn", dict(num_classes=80), {}),
]


def _old(name, method, kw, opts):
    builder = {
        "ssd_vgg16": M.legacy_ssd_vgg16,
        "ssd_r50": M.legacy_ssd_r50,
        "mask_rcnn_r50_fpn": M.legacy_mask_rcnn_r50_fpn,
    }[name]
    return builder(method, **kw, **opts)


def _new(name, method, kw, opts, **extra):
    score = 0.05 if name.startswith("mask") else 0.02
    return M.model_config(name, method, score_thr=score, **kw, **opts, **extra)["model"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("name", "kw", "opts"), CASES)
def test_same_model(name, kw, opts, method) -> None:
    old, new = _old(name, method, kw, opts), _new(name, method, kw, opts)
    print("\n".join(_diff(_plain(old), _plain(new))))
    torch.manual_seed(0)
    a = MODELS.build(ConfigDict(old))
    b = MODELS.build(ConfigDict(new))
    sa, sb = _structure(a), _structure(b)
    assert sa[0] == sb[0]
    assert sa[1] == sb[1]
    assert sa[2] == sb[2]


@pytest.mark.parametrize("method", ["pws", "gn", "bn", "none"])
def test_same_mask_rcnn_neck_heads_method(method) -> None:
    opts = dict(neck_heads="method", neck_heads_pws={"gamma": 0.1, "gamma_mode": "equiv"})
    old, new = (
        _old("mask_rcnn_r50_fpn", method, {"num_classes": 80}, opts),
        _new("mask_rcnn_r50_fpn", method, {"num_classes": 80}, opts),
    )
    print("\n".join(_diff(_plain(old), _plain(new))))
    a, b = MODELS.build(ConfigDict(old)), MODELS.build(ConfigDict(new))
    assert _structure(a) == _structure(b)


def test_same_with_checkpoint_and_coco(tmp_path) -> None:
    path = tmp_path / "r50.pth"
    torch.save({}, path)
    for name in ("ssd_r50", "mask_rcnn_r50_fpn"):
        for method in ("bn", "pws"):
            kw = {"num_classes": 80}
            if name.startswith("ssd"):
                kw["anchors"] = "coco"
            old = _old(name, method, kw, {"backbone_checkpoint": str(path)})
            kw.pop("anchors", None)
            extra = {"data_format": "coco"} if name.startswith("ssd") else {}
            new = _new(name, method, kw, {"backbone_checkpoint": str(path)}, **extra)
            d = _diff(_plain(old), _plain(new))
            print(name, method, "\n".join(d))
            assert [x for x in d if "backbone" in x and "num_stages" not in x and "style" not in x] == []
            if name.startswith("ssd"):
                assert _plain(old["bbox_head"]["anchor_generator"]) == _plain(
                    new["bbox_head"]["anchor_generator"]
                )
    old = M.legacy_ssd_vgg16("pws", num_classes=20, input_size=300, l2_norm_scale=10.0)
    new = M.model_config("ssd_vgg16", "pws", num_classes=20, input_size=300, l2_norm_scale=10.0)["model"]
    assert _diff(_plain(old), _plain(new)) == []
