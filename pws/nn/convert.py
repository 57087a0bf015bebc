"""Convert an existing model (torchvision, timm, your own) to another normalization method."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pws.nn.factory import NormMethod
from pws.nn.methods import CONV_CLASSES


def convert(model: nn.Module, method: str, *, keep_weights: bool = True, **options: Any) -> nn.Module:
    """Turn every ``nn.Conv2d`` and ``nn.BatchNorm2d`` of ``model`` into ``method``'s, in place; return it.

    * methods without an output norm (``pws``, ``wn``, ``none``): each conv of one of the table's conv
      classes (plain, PWS, WN) becomes the method's conv (with a bias, beta = 0) and every BatchNorm2d is
      removed (replaced by Identity) -- the paper's "remove all BN layers and replace all conv layers with
      PWS" (eq. 12).
    * methods with an output norm (``bn``, ``gn``, ``in``, ``ln``, ``sn``): convs stay plain and each
      BatchNorm2d becomes the method's norm.

    ``keep_weights`` copies the raw conv weights (and biases) into the new convs, so a converted pretrained
    model starts from its weights (for PWS these are standardized by eq. 12 in the forward pass). A model
    that is itself one conv or BN layer is returned converted (it cannot be changed in place).
    """
    spec = NormMethod(method, **options)
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.BatchNorm2d):
            new: nn.Module = spec.norm(module.num_features).to(_device_of(module))
        elif type(module) in CONV_CLASSES and not spec.normalizes_outputs:
            new = _convert_conv(module, spec, keep_weights)
        else:
            continue
        if not name:
            return new
        model.set_submodule(name, new)
    return model


@torch.no_grad()
def _convert_conv(conv: nn.Conv2d, spec: NormMethod, keep_weights: bool) -> nn.Conv2d:
    new = spec.conv(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
        conv.groups, bias=True,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    new.padding_mode = conv.padding_mode
    if keep_weights:
        new.weight.copy_(conv.weight)
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new.train(conv.training)


def _device_of(module: nn.Module) -> torch.device:
    tensors = list(module.parameters()) + list(module.buffers())
    return tensors[0].device if tensors else torch.device("cpu")
