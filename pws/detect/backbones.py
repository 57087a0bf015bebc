"""The project's detection backbones: SSD's VGG-16 with any conv and norm (:class:`NormSSDVGG`, the paper's
SSD320: Tables 1-3, Figures 1 and 6) and mmdet's ResNet with Table 5's input norm (:class:`InputNormResNet`).

mmdet's ``SSDVGG`` (on mmcv's ``VGG``) hard-codes plain convs and takes no ``conv_cfg``/``norm_cfg``; this one
takes both, so the same backbone runs every method of the paper:

* ``pws``/``wn``/``none``: ``conv_cfg=dict(type='PWS', gamma=...)`` (or ``'WN'``, ``'HeConv'``) and
  ``norm_cfg=None``: every conv is that conv, with its bias (beta), and no norm layer exists;
* ``bn``/``gn``/``in``/``ln``/``sn``: ``conv_cfg=dict(type='HeConv')`` and ``norm_cfg=dict(type='BN')`` (or
  ``'GN2d'``, ``'IN2d'``, ``'LN2d'``, ``'SN'``): a bias-free plain conv followed by that norm.

Layout (the authors' SSD, not mmdet's SSD300): conv1_1 ... conv5_3 of VGG-16 configuration D with 2x2
max-pools (ceil mode, so 300 gives 38 as in SSD300 and 320 gives 40), pool5 3x3 stride 1, then a
**non-dilated** conv6 3x3-1024 (padding 1; SSD300's conv6 is dilated 6) and conv7 1x1-1024. Outputs:
conv4_3 (512 channels, stride 8: 40x40 at 320) and conv7 (1024 channels, stride 16: 20x20 at 320), each after
its ReLU; ``mmdet``'s ``SSDNeck`` adds the extra layers (10, 5, 3, 1 at 320) and the L2Norm of conv4_3.
"""

from __future__ import annotations

from typing import Any

from mmcv.cnn import ConvModule, build_norm_layer
from mmdet.models.backbones import ResNet
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

from pws.detect.widths import CHANNEL_MULTIPLE, scaled_channels
from pws.models.vgg import VGG16_LAYERS

SSD_VGG16_OUT_CHANNELS = (512, 1024)
__all__ = ["CHANNEL_MULTIPLE", "SSD_VGG16_OUT_CHANNELS", "InputNormResNet", "NormSSDVGG"]


@MODELS.register_module(force=True)
class NormSSDVGG(BaseModule):
    """VGG-16 for SSD, built from ``conv_cfg``/``norm_cfg`` (registered beside mmdet's ``SSDVGG``).

    Args:
        conv_cfg: mmcv conv config of every conv (``None`` is mmcv's plain ``Conv2d``).
        norm_cfg: mmcv norm config after every conv, or ``None`` for no norm.
        act_cfg: activation after every conv (norm), ReLU.
        in_channels: image channels.
        width: multiplies every conv's output channels (1.0: VGG-16's 64 ... 512 and 1024); the counts are
            rounded to multiples of :data:`CHANNEL_MULTIPLE` (:func:`scaled_channels`). The smoke scale's
            narrower SSD; the paper's is 1.0.
        init_cfg: mmengine init config; ``None`` keeps the layers' own init (He fan-in for the project's
            convs). Give ``dict(type='Pretrained', checkpoint=<local file>)`` to start from weights.
    """

    def __init__(
        self,
        conv_cfg: dict[str, Any] | None = None,
        norm_cfg: dict[str, Any] | None = None,
        act_cfg: dict[str, Any] | None = None,
        in_channels: int = 3,
        width: float = 1.0,
        init_cfg: dict[str, Any] | list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(init_cfg)
        self.out_channels = tuple(scaled_channels(c, width) for c in SSD_VGG16_OUT_CHANNELS)
        act_cfg = dict(type="ReLU") if act_cfg is None else act_cfg

        def block(cin: int, cout: int, kernel: int, padding: int) -> ConvModule:
            return ConvModule(
                cin, cout, kernel, padding=padding, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg
            )

        stages: list[list[nn.Module]] = [[]]
        channels = in_channels
        for spec in VGG16_LAYERS:
            if spec == "M":
                stages.append([nn.MaxPool2d(2, 2, ceil_mode=True)])
            else:
                stages[-1].append(block(channels, scaled_channels(int(spec), width), 3, 1))
                channels = scaled_channels(int(spec), width)
        # stages: conv1, pool1+conv2, pool2+conv3, pool3+conv4 (-> out 0), pool4+conv5
        self.stage1 = nn.Sequential(*stages[0], *stages[1], *stages[2], *stages[3])  # conv1_1 .. conv4_3
        self.stage2 = nn.Sequential(
            *stages[4],  # pool4, conv5_1 .. conv5_3
            nn.MaxPool2d(3, 1, padding=1),  # pool5
            block(channels, self.out_channels[1], 3, 1),  # conv6, not dilated
            block(self.out_channels[1], self.out_channels[1], 1, 0),  # conv7
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        conv4_3 = self.stage1(x)
        conv7 = self.stage2(conv4_3)
        return conv4_3, conv7


@MODELS.register_module(force=True)
class InputNormResNet(ResNet):
    """mmdet's ``ResNet`` whose stem conv is followed by a norm of its own (``stem_norm_cfg``).

    Table 5's ResNet-50 for the methods without an output norm (pws, wn, none) has no norm inside its blocks
    and a LayerNorm over (C, H, W) after the stem conv (:data:`pws.models.resnet50.IO_NORM`: the paper's "we
    use LN to normalize the input and the output of ResNet-50"). mmdet's ``ResNet`` builds the stem's norm
    from the blocks' ``norm_cfg`` (``NoNorm`` for those methods), so as Table 3's backbone it would drop that
    LayerNorm; this one keeps it, and an exported Table 5 run loads into it tensor for tensor
    (:func:`pws.transfer.backbone.export_backbone`). Everything else is mmdet's ``ResNet`` (freezing,
    ``norm_eval``, init). ``stem_norm_cfg=None`` is mmdet's ``ResNet``.
    """

    def __init__(self, *args: Any, stem_norm_cfg: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.stem_norm_cfg = stem_norm_cfg  # read by _make_stem_layer, which ResNet.__init__ calls
        super().__init__(*args, **kwargs)

    def _make_stem_layer(self, in_channels: int, stem_channels: int) -> None:
        super()._make_stem_layer(in_channels, stem_channels)
        if self.stem_norm_cfg is None:
            return
        if self.deep_stem:
            raise ValueError("InputNormResNet: stem_norm_cfg replaces the norm of the one-conv stem; "
                             "deep_stem has three")  # fmt: skip
        delattr(self, self.norm1_name)
        self.norm1_name, norm = build_norm_layer(self.stem_norm_cfg, stem_channels, postfix=1)
        self.add_module(self.norm1_name, norm)
