"""The paper's plain CIFAR-10 network (Table 4, "Plain"): ConvPool-CNN-C without dropout.

ConvPool-CNN-C is model C of Springenberg et al. (2015, "Striving for Simplicity", Table 1/2) with max-pooling
kept. The paper drops every dropout layer. Layer by layer, as in the authors' TensorFlow code behind Table 4
(input 32x32)::

    3 x [conv3x3-96  (pad 1) + norm + ReLU]               32x32
    max-pool 2x2, stride 2                                16x16
    3 x [conv3x3-192 (pad 1) + norm + ReLU]               16x16
    max-pool 2x2, stride 2                                 8x8
    conv3x3-192 (no padding, "valid") + norm + ReLU        6x6
    2 x [conv1x1-192 + norm + ReLU]                        6x6
    global average pool                                    1x1
    conv1x1-num_classes (bias, no norm, no ReLU) -> logits

Springenberg et al. pool with 3x3 windows; the authors' code uses 2x2 windows, and so do we. Every conv,
the logits conv included, comes from the method factory (:class:`pws.nn.NormMethod`), so under ``pws`` the
logits layer is a PWS conv too (as in the authors' code, where the logits are a ``conv_fn`` 1x1 conv). Its
position after the global pool is the authors'; without a ReLU between them, pooling first and the 1x1
conv first give the same logits.
"""

from __future__ import annotations

from torch import Tensor, nn

from pws.nn.factory import NormMethod


class ConvPoolCNNC(nn.Module):
    """ConvPool-CNN-C without dropout; ``forward`` maps ``(N, in_channels, 32, 32)`` to ``(N, num_classes)``.

    ``width`` scales the channel counts 96/192 (1.0 is the paper's network; smaller values give a cheaper
    net for CPU smoke runs). Any input of at least 20x20 works (the valid 3x3 conv needs 3x3 after the two
    pools); the paper uses 32x32.
    """

    def __init__(
        self, method: NormMethod, num_classes: int, in_channels: int = 3, width: float = 1.0
    ) -> None:
        super().__init__()
        if width <= 0:
            raise ValueError(f"plain_c width must be > 0, got {width!r}")
        c1 = max(1, round(96 * width))
        c2 = max(1, round(192 * width))

        def block(cin: int, cout: int, kernel: int, padding: int) -> list[nn.Module]:
            return [method.conv_norm(cin, cout, kernel, padding=padding), nn.ReLU(inplace=True)]

        layers: list[nn.Module] = []
        layers += block(in_channels, c1, 3, 1) + block(c1, c1, 3, 1) + block(c1, c1, 3, 1)
        layers.append(nn.MaxPool2d(2, 2))
        layers += block(c1, c2, 3, 1) + block(c2, c2, 3, 1) + block(c2, c2, 3, 1)
        layers.append(nn.MaxPool2d(2, 2))
        layers += block(c2, c2, 3, 0) + block(c2, c2, 1, 0) + block(c2, c2, 1, 0)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.logits = method.conv(c2, num_classes, 1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.logits(self.pool(self.features(x))).flatten(1)


def plain_c(method: NormMethod, num_classes: int, in_channels: int = 3, width: float = 1.0) -> ConvPoolCNNC:
    """Build :class:`ConvPoolCNNC` (kwargs: ``in_channels`` = 3, ``width`` = 1.0)."""
    return ConvPoolCNNC(method, num_classes, in_channels=in_channels, width=width)
