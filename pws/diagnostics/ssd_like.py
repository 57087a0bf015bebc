"""The SSD VGG-16 backbone with a small SSD-style loss head, for Figures 1 and 6.

The backbone is :func:`pws.models.vgg.vgg16_features` built with the method under study (``none``: plain
convs; ``bn``: conv + BatchNorm; ``pws``: PWS convs), with SSD's ``ceil_mode`` pools (Liu et al. 2016).
The head is what SSD puts on top, reduced to what makes a detection gradient: SSD's L2Norm (scale 20)
on conv4_3, and one 3x3 prediction conv per feature map (conv4_3, stride 8; conv5_3, stride 16) giving,
for one square default box per location (side 0.1 and 0.2 of the image), 21 class scores (background +
20 VOC classes) and 4 box offsets encoded as SSD does (variances 0.1, 0.2). A location is positive for
the ground-truth box its center falls in (the smallest one if several) when that box's size matches the
level's default box within a factor 2; the loss is SSD's: softmax cross-entropy with 3:1 hard negative
mining plus smooth-L1 on the positives, divided by the number of positives. The head convs are plain
(as mmdet's SSD prediction convs are) and are not probed: the figures are about the backbone.

Inputs follow SSD's preprocessing: RGB pixel values in [0, 255] minus the ImageNet mean, *not* divided by
a standard deviation (mmdet's and ssd.pytorch's SSD configs), resized to a square.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pws.models.vgg import vgg16_features
from pws.nn.factory import NormMethod, he_init

SSD_MEAN = (123.675, 116.28, 103.53)
NUM_CLASSES = 21  # background + 20 VOC classes
CONV4_3 = 10  # index (1-based) of conv4_3 among the 13 convs
BOX_SIZES = (0.1, 0.2)  # default box side (fraction of the image) on conv4_3 and conv5_3
VARIANCES = (0.1, 0.2)


class L2Norm(nn.Module):
    """SSD's channel-wise L2 normalization with a learned per-channel scale (init 20)."""

    def __init__(self, channels: int, scale: float = 20.0, eps: float = 1e-10) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), scale))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        norm = x.pow(2).sum(1, keepdim=True).sqrt() + self.eps
        return self.weight.view(1, -1, 1, 1) * x / norm


class SSDLike(nn.Module):
    """VGG-16 backbone (any method) + the SSD-style head above; ``loss(images, targets)`` is SSD's loss."""

    def __init__(self, method: NormMethod | str) -> None:
        super().__init__()
        method = NormMethod(method) if isinstance(method, str) else method
        self.backbone = vgg16_features(method, ceil_mode=True)
        self.l2norm = L2Norm(512)
        self.heads = nn.ModuleList(nn.Conv2d(512, NUM_CLASSES + 4, 3, padding=1) for _ in BOX_SIZES)
        for head in self.heads:
            he_init(head)
        # Where conv4_3's ReLU output is: after the 10th conv block's ReLU in the Sequential.
        convs_seen, self._tap = 0, None
        for i, layer in enumerate(self.backbone):
            if not isinstance(layer, (nn.ReLU, nn.MaxPool2d)):
                convs_seen += 1
                if convs_seen == CONV4_3:
                    self._tap = i + 1  # the ReLU right after
        assert self._tap is not None

    def forward(self, images: Tensor) -> list[Tensor]:
        """Per level, predictions ``(N, H*W, 21 + 4)``."""
        x = images
        feats = []
        for i, layer in enumerate(self.backbone):
            x = layer(x)
            if i == self._tap:
                feats.append(self.l2norm(x))
        feats.append(x)
        return [head(f).flatten(2).transpose(1, 2) for head, f in zip(self.heads, feats, strict=True)]

    def loss(self, images: Tensor, targets: list[dict[str, Tensor]]) -> Tensor:
        """SSD's multibox loss; ``targets[i]``: ``boxes`` (M, 4) x1y1x2y2 in [0, 1], ``labels`` in 1..20."""
        preds = self.forward(images)
        sizes = [(images.shape[-2], images.shape[-1])]
        cls_all, reg_all, lab_all, off_all = [], [], [], []
        for level, p in enumerate(preds):
            h, w = _level_shape(self, level, sizes[0])
            labels, offsets = assign(targets, h, w, BOX_SIZES[level], p.device)
            cls_all.append(p[..., :NUM_CLASSES])
            reg_all.append(p[..., NUM_CLASSES:])
            lab_all.append(labels)
            off_all.append(offsets)
        return multibox_loss(
            torch.cat(cls_all, 1), torch.cat(reg_all, 1), torch.cat(lab_all, 1), torch.cat(off_all, 1)
        )


def input_sources(backbone: nn.Sequential) -> dict[int, str]:
    """Per conv layer (1-based) of a VGG ``nn.Sequential``: its input's source (image, relu or maxpool)."""
    sources, previous, index = {}, "image", 0
    for layer in backbone:
        if isinstance(layer, nn.MaxPool2d):
            previous = "maxpool"
        elif isinstance(layer, nn.ReLU):
            previous = "relu"
        else:
            index += 1
            sources[index] = previous
    return sources


def _level_shape(model: SSDLike, level: int, image_hw: tuple[int, int]) -> tuple[int, int]:
    """Feature map size of a level (conv4_3: 3 ceil-mode pools; conv5_3: 4)."""
    h, w = image_hw
    for _ in range(3 + level):
        h, w = -(-h // 2), -(-w // 2)
    return h, w


@torch.no_grad()
def assign(
    targets: list[dict[str, Tensor]], h: int, w: int, box_size: float, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Labels (N, h*w) and encoded offsets (N, h*w, 4) for one level of square default boxes."""
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
    cy, cx = torch.meshgrid(ys, xs, indexing="ij")
    cx, cy = cx.reshape(-1), cy.reshape(-1)
    labels = torch.zeros(len(targets), h * w, dtype=torch.long, device=device)
    offsets = torch.zeros(len(targets), h * w, 4, device=device)
    for i, t in enumerate(targets):
        boxes, lab = t["boxes"].to(device), t["labels"].to(device)
        if boxes.numel() == 0:
            continue
        bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        size = torch.sqrt(bw * bh)
        fits = (size >= box_size / 2) & (size <= box_size * 2)
        inside = (
            (cx[:, None] >= boxes[None, :, 0])
            & (cx[:, None] <= boxes[None, :, 2])
            & (cy[:, None] >= boxes[None, :, 1])
            & (cy[:, None] <= boxes[None, :, 3])
            & fits[None, :]
        )
        area = torch.where(inside, (bw * bh)[None, :], torch.full_like(inside, 2.0, dtype=torch.float32))
        best_area, best = area.min(dim=1)
        pos = best_area <= 1.0
        if not pos.any():
            continue
        b = boxes[best[pos]]
        labels[i, pos] = lab[best[pos]]
        gcx, gcy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
        gw, gh = (b[:, 2] - b[:, 0]).clamp_min(1e-6), (b[:, 3] - b[:, 1]).clamp_min(1e-6)
        offsets[i, pos] = torch.stack(
            [
                (gcx - cx[pos]) / (VARIANCES[0] * box_size),
                (gcy - cy[pos]) / (VARIANCES[0] * box_size),
                torch.log(gw / box_size) / VARIANCES[1],
                torch.log(gh / box_size) / VARIANCES[1],
            ],
            dim=1,
        )
    return labels, offsets


def multibox_loss(cls: Tensor, reg: Tensor, labels: Tensor, offsets: Tensor, neg_ratio: int = 3) -> Tensor:
    """SSD's loss: CE on positives and ``neg_ratio`` x as many hardest negatives, smooth-L1 on positives."""
    ce = F.cross_entropy(cls.reshape(-1, cls.shape[-1]), labels.reshape(-1), reduction="none").view_as(labels)
    pos = labels > 0
    num_pos = pos.sum(dim=1, keepdim=True)
    with torch.no_grad():
        neg_ce = ce.masked_fill(pos, -1.0)
        rank = neg_ce.argsort(dim=1, descending=True).argsort(dim=1)
        # at least one mined negative per image (SSD's images without objects still train the background)
        neg = rank < (neg_ratio * num_pos).clamp(min=1, max=labels.shape[1] - 1)
        neg &= ~pos
    cls_loss = ce[pos | neg].sum()
    reg_loss = F.smooth_l1_loss(reg[pos], offsets[pos], reduction="sum") if pos.any() else reg.sum() * 0
    return (cls_loss + reg_loss) / num_pos.sum().clamp(min=1)
