"""Register the project's layers, backbone, head and hooks with mmengine/mmdet; no edit to mmdetection.

Load it from any mmdet/mmengine config with::

    custom_imports = dict(imports=["pws.detect.registry"], allow_failed_imports=False)

and then, in any model of the config::

    conv_cfg=dict(type="PWS", gamma=1e-4)          # pws.nn.PWSConv2d, eq. (12); also fan_in_scale,
                                                   # learn_alpha, gamma_mode, alpha_init, force_bias
    conv_cfg=dict(type="WN")                       # weight normalization, g = 1 ("WN (g = 1)")
    conv_cfg=dict(type="HeConv")                   # plain conv, He fan-in init (the project's baselines)
    norm_cfg=dict(type="SN")                       # Switchable Normalization
    norm_cfg=dict(type="LN2d")                     # LayerNorm over (C, H, W) = GroupNorm(1, C)
    norm_cfg=dict(type="GN2d", num_groups=32)      # GroupNorm, gcd(num_groups, C) groups in a C-channel layer
    norm_cfg=dict(type="NoNorm")                   # no normalization, for models that need a norm_cfg
    backbone=dict(type="NormSSDVGG", conv_cfg=..., norm_cfg=...)   # SSD's VGG-16 with any method
    bbox_head=dict(type="FixedSSDHead", ...)       # mmdet 3.3.0's SSDHead, inference bug worked around
    val_evaluator=[..., dict(type="DetectionFMeasure")]   # Figure 3's f-measure (pws.detect.fmeasure)
    custom_hooks=[dict(type="DivergenceHook"), dict(type="ThroughputHook", warmup_iters=50)]   # pws.engine

Which convs and norms there are is read from the method table (:data:`pws.nn.methods.METHOD_TABLE`: each
method's ``mmcv_conv`` and ``mmcv_norm``, plus ``NoNorm``), the classes from :data:`pws.detect.layers.LAYERS`.
Convs and norms go into mmengine's root ``MODELS`` registry, which mmcv's ``build_conv_layer`` and
``build_norm_layer`` search from any scope (mmdet's included); the backbone and head into mmdet's ``MODELS``
beside ``SSDVGG``/``SSDHead``; the hooks into mmengine's ``HOOKS``. BN is mmcv's own (``'BN'``); IN is the
project's ``'IN2d'``, defined on a 1x1 map, and GN its ``'GN2d'``, whose grouping fits a narrow layer.
"""

from __future__ import annotations

from mmengine.registry import MODELS

from pws.detect import backbones, fmeasure, heads
from pws.detect.layers import LAYERS
from pws.engine import hooks, loops
from pws.nn.methods import METHOD_TABLE, MMCV_NO_NORM, MMCV_OWN_LAYERS


def _layer(name: str, method: str) -> type:
    if name not in LAYERS:
        raise LookupError(
            f"method {method!r} of pws.nn.methods.METHOD_TABLE names the mmcv layer {name!r}, which "
            f"pws.detect.layers.LAYERS does not define (it has {', '.join(LAYERS)})"
        )
    return LAYERS[name]


CONVS = {
    m.mmcv_conv: _layer(m.mmcv_conv, m.name)
    for m in METHOD_TABLE.values()
    if m.mmcv_conv not in MMCV_OWN_LAYERS
}
NORMS = {
    **{
        m.mmcv_norm: _layer(m.mmcv_norm, m.name)
        for m in METHOD_TABLE.values()
        if m.mmcv_norm is not None and m.mmcv_norm not in MMCV_OWN_LAYERS
    },
    MMCV_NO_NORM: LAYERS[MMCV_NO_NORM],
}

for _name, _cls in {**CONVS, **NORMS}.items():
    MODELS.register_module(name=_name, module=_cls, force=True)

__all__ = ["CONVS", "NORMS", "backbones", "fmeasure", "heads", "hooks", "loops"]
