"""ImageNet ResNet-50 (He et al. 2016, torchvision's layout: v1.5, stride on the 3x3 conv) for any method.

Every conv and every norm comes from the method factory (:class:`pws.nn.NormMethod`):

* methods with an output norm (bn, gn, in, ln, sn): the method's norm after every conv, as torchvision puts
  its BatchNorm (stem, the three convs of each bottleneck, the downsample conv). With ``bn`` the module and
  parameter names equal torchvision's ``resnet50()``, so its state dict loads unchanged.
* methods without one (none, wn, pws): no norm inside the network (the norm slots ``bn1``, ``bn2``, ``bn3``
  and ``downsample.1`` are ``nn.Identity``) and, as the paper says for ImageNet ("we use LN to normalize the
  input and the output of ResNet-50. [...] we remove all BN layers"), two LayerNorms (``GroupNorm`` with one
  group, i.e. LN over C, H, W, built by ``NormMethod("ln")``): one after the stem conv (in the ``bn1`` slot)
  and one before the final ReLU (``layer4[-1].out_norm``, applied to the sum of the last block's residual
  and shortcut). This is where the authors' PyTorch code puts them (a GN(1) after the stem conv and a
  "ReLU neck" GN(1) + ReLU after the backbone). Kwarg ``io_norm`` overrides the default: ``False`` leaves
  the stem slot ``Identity`` and adds no output LN; ``True`` with an output-norm method adds the output LN
  (the stem keeps the method's own norm).

Whether a method gets the two LayerNorms is a per-method setting, :data:`IO_NORM` (method -> (on, source));
the paper states them for PWS only, so each method's entry names where its choice comes from:

* ``pws``: on -- the paper ("To get equivalent outputs and gradients to BN, we use LN to normalize the input
  and the output of ResNet-50", in its PWS setting) and the authors' PyTorch code.
* ``wn``, ``none``: on -- the project's choice, not the paper's (it says nothing about them here): they
  normalize no output either, and with the same LNs Table 5's WN row differs from PWS's only in the conv.
  ``model.io_norm=false`` builds them without.
* ``bn``, ``gn``, ``ln``, ``in``, ``sn``: off -- their own norm after every conv, where torchvision's
  ResNet-50 has its BatchNorm (the paper: the norm methods compared in the standard ResNet-50).

Differences to torchvision/the authors, on purpose: convs are He-initialized with fan-in (the factory's
rule for every method) instead of torchvision's fan-out; ``zero_init_residual`` is off (the authors' setting
and torchvision's default). The authors' blocks apply the ReLU at the block input and add the pre-ReLU
input as the identity; we keep torchvision's block (ReLU after the addition), as the paper names the
standard ResNet-50.

The network is fully convolutional up to the global pool, so inputs smaller than 224 (e.g. 64x64 in
tests) work: the output stride is 32.
"""

from __future__ import annotations

from torch import Tensor, nn

from pws.nn.factory import NormMethod

LAYERS: tuple[int, int, int, int] = (3, 4, 6, 3)
EXPANSION = 4


_NO_OUTPUT_NORM = ("on: the project's choice, not the paper's (which states the LNs for PWS only): no output "
                   "norm either, so the same LNs as PWS; model.io_norm=false builds it without")
_OWN_NORM = "off: the method's own norm after every conv, where torchvision's ResNet-50 has its BatchNorm"
IO_NORM: dict[str, tuple[bool, str]] = {
    "pws": (True, "on: the paper: 'we use LN to normalize the input and the output of ResNet-50' (its PWS "
                  "setting); the authors' code: GN(1) after the stem and a GN(1) + ReLU neck"),
    "wn": (True, _NO_OUTPUT_NORM),
    "none": (True, _NO_OUTPUT_NORM),
    **{m: (False, _OWN_NORM) for m in ("bn", "gn", "ln", "in", "sn")},
}
"""Per method: whether ResNet-50 gets Table 5's LayerNorms at the input and the output, and the source."""


def io_norm_default(method: NormMethod) -> bool:
    """:data:`IO_NORM`'s choice for ``method`` (a method not in it: on exactly without an output norm)."""
    on, _ = IO_NORM.get(method.method, (not method.normalizes_outputs, "no output norm"))
    return on


def layer_norm(channels: int) -> nn.Module:
    """LN over (C, H, W): ``GroupNorm`` with one group, from the factory's ``ln`` method."""
    return NormMethod("ln").norm(channels)


class Bottleneck(nn.Module):
    """torchvision's ``Bottleneck`` (names conv1/bn1/.../downsample) with factory convs and norms.

    ``out_norm`` (``nn.Identity`` unless set) is applied to ``residual + shortcut`` before the final ReLU.
    """

    def __init__(
        self, method: NormMethod, in_channels: int, width: int, stride: int, downsample: nn.Module | None
    ) -> None:
        super().__init__()
        out_channels = width * EXPANSION
        self.conv1 = method.conv(in_channels, width, 1)
        self.bn1 = method.norm(width)
        self.conv2 = method.conv(width, width, 3, stride=stride, padding=1)
        self.bn2 = method.norm(width)
        self.conv3 = method.conv(width, out_channels, 1)
        self.bn3 = method.norm(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.out_norm: nn.Module = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(self.out_norm(out + identity))


class ResNet50(nn.Module):
    """ResNet-50: ``forward`` maps ``(N, in_channels, H, W)`` to ``(N, num_classes)``; 224x224 on ImageNet."""

    def __init__(
        self, method: NormMethod, num_classes: int, in_channels: int = 3, io_norm: bool | None = None
    ) -> None:
        super().__init__()
        if io_norm is None:
            io_norm = io_norm_default(method)
        self.conv1 = method.conv(in_channels, 64, 7, stride=2, padding=3)
        self.bn1 = layer_norm(64) if io_norm and not method.normalizes_outputs else method.norm(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = 64
        for i, (blocks, width) in enumerate(zip(LAYERS, (64, 128, 256, 512), strict=True)):
            stride = 1 if i == 0 else 2
            downsample = None
            if stride != 1 or channels != width * EXPANSION:
                downsample = nn.Sequential(
                    method.conv(channels, width * EXPANSION, 1, stride=stride), method.norm(width * EXPANSION)
                )
            layer = [Bottleneck(method, channels, width, stride, downsample)]
            channels = width * EXPANSION
            layer += [Bottleneck(method, channels, width, 1, None) for _ in range(1, blocks)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*layer))
        if io_norm:
            self.layer4[-1].out_norm = layer_norm(channels)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def resnet50(
    method: NormMethod, num_classes: int, in_channels: int = 3, io_norm: bool | None = None
) -> ResNet50:
    """Build :class:`ResNet50` (kwargs: ``in_channels`` = 3, ``io_norm`` = None: the two LayerNorms at the
    input and the output as :data:`IO_NORM` says: on for none/wn/pws, off for bn/gn/in/ln/sn)."""
    return ResNet50(method, num_classes, in_channels=in_channels, io_norm=io_norm)
