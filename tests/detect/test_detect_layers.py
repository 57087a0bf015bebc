"""The project's layers inside mmcv/mmdet: registered, same math as pws.nn, init left alone."""

from __future__ import annotations

import pytest
import torch
from detection_stack import require_detection_stack
from torch import nn

require_detection_stack()

from mmcv.cnn import ConvModule, build_conv_layer, build_norm_layer  # noqa: E402
from mmdet.registry import MODELS  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402

from pws.detect.layers import PWS, SN, WN, HeConv, LN2d, NoNorm  # noqa: E402
from pws.detect.registry import CONVS, NORMS  # noqa: E402
from pws.nn import NormMethod, PWSConv2d, SwitchNorm2d, WNConv2d  # noqa: E402
from pws.nn.group_norm import GroupNorm2d  # noqa: E402
from pws.nn.instance_norm import InstanceNorm2d  # noqa: E402
from pws.nn.methods import METHOD_TABLE, MMCV_OWN_LAYERS, conv_kind, mmcv_cfgs  # noqa: E402

register_all_modules(init_default_scope=False)
pytestmark = pytest.mark.usefixtures("mmdet_scope")


@pytest.mark.parametrize("options", [{}, {"gamma": 1e-4, "gamma_mode": "equiv"}, {"fan_in_scale": False}])
def test_pws_conv_in_mmdet_equals_pws_nn(options: dict) -> None:
    """The PWS conv that mmdet builds (conv_cfg=dict(type='PWS')) computes exactly pws.nn.PWSConv2d."""
    conv_cfg = {"type": "PWS", "gamma": 1e-3, **options}
    block = ConvModule(6, 12, 3, padding=1, conv_cfg=conv_cfg, norm_cfg=None, act_cfg=None)
    assert isinstance(block.conv, PWSConv2d) and block.conv.bias is not None
    reference = PWSConv2d(
        6, 12, 3, padding=1, gamma=conv_cfg["gamma"], **{k: v for k, v in options.items() if k != "gamma"}
    )
    with torch.no_grad():
        block.conv.alpha.uniform_(0.5, 2.0)
        block.conv.bias.normal_()
    reference.load_state_dict(block.conv.state_dict())
    block, reference = block.double(), reference.double()
    x = torch.randn(2, 6, 9, 7, dtype=torch.float64)
    torch.testing.assert_close(block(x), reference(x), rtol=0, atol=0)
    # and both equal eq. (12) computed here
    w = block.conv.weight
    n = w[0].numel()
    gamma = conv_cfg["gamma"] if options.get("gamma_mode", "var") == "var" else 2 * conv_cfg["gamma"] / n
    scale = (2.0 / n) ** 0.5 if options.get("fan_in_scale", True) else 1.0
    flat = w.flatten(1)
    w_hat = (flat - flat.mean(1, keepdim=True)) / torch.sqrt(
        flat.var(1, unbiased=False, keepdim=True) + gamma
    )
    kernel = (block.conv.alpha[:, None] * scale * w_hat).view_as(w)
    torch.testing.assert_close(block(x), nn.functional.conv2d(x, kernel, block.conv.bias, padding=1))


def test_the_pws_conv_of_a_built_detector_equals_pws_nn() -> None:
    model = MODELS.build(
        dict(type="NormSSDVGG", conv_cfg=dict(type="PWS", gamma=1e-3, force_bias=True), norm_cfg=None)
    )
    model.init_weights()
    conv = model.stage2[-1].conv  # conv7
    assert type(conv) is PWS and conv.gamma == 1e-3
    reference = PWSConv2d(conv.in_channels, conv.out_channels, 1, gamma=1e-3)
    reference.load_state_dict(conv.state_dict())
    x = torch.randn(2, conv.in_channels, 5, 5)
    torch.testing.assert_close(conv(x), reference(x))


@pytest.mark.parametrize("conv_type", ["PWS", "WN", "HeConv"])
def test_registered_convs_keep_their_init_under_mmcv_and_mmengine_init(conv_type: str) -> None:
    """ConvModule's kaiming(fan_out) and init_cfg entries matching 'Conv2d' must not re-initialize them."""
    neck = MODELS.build(
        dict(
            type="SSDNeck",
            in_channels=(64, 128),
            out_channels=(64, 128, 64),
            level_strides=(2,),
            level_paddings=(1,),
            conv_cfg=dict(type=conv_type),
            norm_cfg=None,
        )
    )
    before = {k: v.clone() for k, v in neck.state_dict().items()}
    neck.init_weights()  # SSDNeck: Xavier on 'Conv2d'; ConvModule: kaiming unless the conv has init_weights
    after = neck.state_dict()
    for key, value in before.items():
        if "l2_norm" not in key:
            torch.testing.assert_close(after[key], value, msg=key)
    conv = neck.extra_layers[0][1].conv
    # He normal, fan-in: std sqrt(2 / n)
    n = conv.weight[0].numel()
    assert 0.8 < conv.weight.std().item() / (2.0 / n) ** 0.5 < 1.2


def test_force_bias_and_types() -> None:
    conv = build_conv_layer(dict(type="PWS", force_bias=True), 4, 8, 3, bias=False)
    assert type(conv) is PWS and conv.bias is not None and float(conv.bias.abs().sum()) == 0.0
    conv = build_conv_layer(dict(type="WN"), 4, 8, 3, bias=False)
    assert type(conv) is WN and isinstance(conv, WNConv2d) and conv.bias is None
    assert torch.equal(conv.g, torch.ones(8))
    conv = build_conv_layer(dict(type="HeConv"), 4, 8, 3, bias=False)
    assert type(conv) is HeConv and conv.bias is None


@pytest.mark.parametrize(
    ("cfg", "cls", "abbr"),
    [
        (dict(type="SN"), SN, "sn"),
        (dict(type="LN2d"), LN2d, "ln"),
        (dict(type="NoNorm"), NoNorm, "nonorm"),
        (dict(type="BN"), nn.BatchNorm2d, "bn"),
        (dict(type="GN", num_groups=32), nn.GroupNorm, "gn"),  # mmcv's own, beside the project's
        (dict(type="GN2d", num_groups=32), GroupNorm2d, "gn"),
        (dict(type="IN2d", affine=True), InstanceNorm2d, "in"),
    ],
)
def test_norms(cfg: dict, cls: type, abbr: str) -> None:
    name, layer = build_norm_layer(cfg, 64, postfix=1)
    assert isinstance(layer, cls) and name == f"{abbr}1"
    x = torch.randn(2, 64, 5, 5)
    y = layer(x)
    assert y.shape == x.shape
    if cls is NoNorm:
        assert y is x and not list(layer.parameters())
    if cls is LN2d:  # LayerNorm over (C, H, W) per sample
        ref = (x - x.mean((1, 2, 3), keepdim=True)) / torch.sqrt(
            x.var((1, 2, 3), unbiased=False, keepdim=True) + 1e-5
        )
        torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-5)
    if cls is SN:
        assert isinstance(layer, SwitchNorm2d)


def _ssd_head(**options):
    from mmengine.config import ConfigDict

    from pws.detect.models import ssd_anchor_generator

    return MODELS.build(
        dict(
            type="FixedSSDHead",
            **options,
            in_channels=(8, 8, 8, 8, 8, 8),
            num_classes=3,
            anchor_generator=ssd_anchor_generator(320, "voc"),
            bbox_coder=dict(
                type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[0.1, 0.1, 0.2, 0.2]
            ),
            test_cfg=ConfigDict(
                nms_pre=100,
                nms=dict(type="nms", iou_threshold=0.45),
                min_bbox_size=0,
                score_thr=0.0,
                max_per_img=10,
            ),
        )
    )


def test_fixed_ssd_head_predicts() -> None:
    """mmdet 3.3.0's SSDHead fails at inference ('no attribute loss_cls'); FixedSSDHead does not."""
    head = _ssd_head()
    feats = [torch.randn(1, 8, s, s) for s in (40, 20, 10, 5, 3, 1)]
    cls_scores, bbox_preds = head(feats)
    results = head.predict_by_feat(
        cls_scores,
        bbox_preds,
        batch_img_metas=[dict(img_shape=(320, 320), scale_factor=(1.0, 1.0))],
        rescale=False,
    )
    assert len(results) == 1 and results[0].bboxes.shape[1] == 4 and len(results[0]) <= 10


def test_ssd_head_prediction_layer_norm() -> None:
    """prediction_norm='layer': each image's every prediction map is (P - mean) / sqrt(var + 1e-3) + beta over
    (C, H, W) of mmdet's plain head output, whatever the features' scale; beta learned; 'none': mmdet's."""
    torch.manual_seed(0)
    plain, normed = _ssd_head(), _ssd_head(prediction_norm="layer")
    normed.load_state_dict(plain.state_dict(), strict=False)
    assert {n for n, _ in normed.named_parameters()} - {n for n, _ in plain.named_parameters()} == {
        f"{branch}_norms.{i}.beta" for branch in ("cls", "reg") for i in range(6)
    }
    normed.cls_norms[2].beta.data.fill_(0.5)
    feats = [0.05 * torch.randn(2, 8, s, s) for s in (40, 20, 10, 5, 3, 1)]  # small features
    shifts = ([0, 0, 0.5, 0, 0, 0], [0] * 6)
    for outs, ref_outs, branch_shifts in zip(normed(feats), plain(feats), shifts, strict=True):
        for out, ref, shift in zip(outs, ref_outs, branch_shifts, strict=True):
            var, mean = torch.var_mean(ref.flatten(1), dim=1, correction=0, keepdim=True)
            torch.testing.assert_close(out.flatten(1), (ref.flatten(1) - mean) / (var + 1e-3).sqrt() + shift)
    with pytest.raises(ValueError, match="prediction_norm"):
        _ssd_head(prediction_norm="batch")


@pytest.mark.parametrize("name", list(METHOD_TABLE))
def test_every_method_of_the_table_builds_in_mmcv_as_in_pws_nn(name: str) -> None:
    """The mmcv layers a method's configs name are registered, and compute what the factory's layers do."""
    entry = METHOD_TABLE[name]
    assert set(entry.mmcv_layers) <= set(CONVS) | set(NORMS) | MMCV_OWN_LAYERS
    method = NormMethod(name)
    conv_cfg, norm_cfg = mmcv_cfgs(method)
    conv = build_conv_layer(conv_cfg, 4, 8, 3, padding=1, bias=False)  # mmdet's ResNet asks bias=False
    reference = method.conv(4, 8, 3, padding=1)
    assert isinstance(conv, entry.conv_class) and conv_kind(conv) == entry.kind
    assert (conv.bias is None) == entry.normalizes_outputs == (reference.bias is None)
    with torch.no_grad():
        for p in conv.parameters():
            p.uniform_(0.5, 1.5)
    reference.load_state_dict(conv.state_dict())
    x = torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(conv(x), reference(x))
    _, required = mmcv_cfgs(method, norm_required=True)
    for cfg in (norm_cfg, required):
        if cfg is None:
            continue
        for channels in (64, 16):  # 16: GN's gcd(32, 16) = 16 groups in both
            _, norm = build_norm_layer(cfg, channels)
            y = torch.randn(2, channels, 5, 5)
            torch.testing.assert_close(norm(y), method.norm(channels)(y))
