"""The VGG-16 conv stack (Simonyan & Zisserman 2015, configuration D) built with any normalization method.

It is the backbone of the paper's SSD (Tables 1-3, Figures 1 and 6) and of the layer benchmark.
"""

from __future__ import annotations

from torch import nn

from pws.nn.factory import NormMethod

# Output channels of the 13 conv3x3 layers, "M" = 2x2 max-pool (configuration D).
VGG16_LAYERS: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512,
)


def vgg16_features(
    method: NormMethod, in_channels: int = 3, ceil_mode: bool = False, final_pool: bool = False
) -> nn.Sequential:
    """conv1_1 ... conv5_3 as ``ConvNorm`` + ReLU blocks with max-pools between stages.

    ``ceil_mode`` is SSD's choice for the third pool; ``final_pool`` appends pool5 (2x2, stride 2).
    """
    layers: list[nn.Module] = []
    channels = in_channels
    for spec in (*VGG16_LAYERS, "M") if final_pool else VGG16_LAYERS:
        if spec == "M":
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=ceil_mode))
        else:
            layers += [method.conv_norm(channels, int(spec), 3, padding=1), nn.ReLU(inplace=True)]
            channels = int(spec)
    return nn.Sequential(*layers)
