"""The measurements behind Figures 1, 2 and 6, at ``smoke`` or ``full`` scale.

Figures 1 and 6 (:func:`measure_backbones`): the SSD VGG-16 backbone (:mod:`pws.diagnostics.ssd_like`) in
its standard (``none``), ``bn`` and ``pws`` forms at LR 1e-2, measured as the paper did: "for every batch,
we calculate the forward process and the backward process. Then we calculate what happened when we update
the filters' gradients. We do not update the parameters" -- so every number is taken at initialization,
over many batches. PWS uses gamma = 1e-3, the paper's value at LR 1e-2 on VOC.

Figure 2 (:func:`train_gammas`): a short CIFAR-style training run of the paper's plain net (``plain_c``,
ConvPool-CNN-C) with PWS at LR 5e-2 (SGD, momentum 0.9, weight decay 5e-4 except alpha, as the paper's
CIFAR-10 runs) for several gamma, recording ``min_o Var[W_o]`` and ``1 / sqrt(min_o Var[W_o] + gamma)`` of
the third conv layer at every step.
"""

from __future__ import annotations

import math
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from pws.diagnostics.probe import VarianceProbe
from pws.diagnostics.ssd_like import SSDLike, input_sources
from pws.nn.factory import NormMethod

# Image normalization: (RGB pixel - mean) / std with ImageNet statistics (mmdet's default for detectors).
# The authors' TF SSD likewise divides by a per-channel scale of about 51 (their ``Normalize``); mmdet's
# own SSD configs use std = 1, which makes a He-initialized plain VGG start ~3,400x larger in variance
# (``--input-std 1`` to see it).
IMAGE_MEAN = (123.675, 116.28, 103.53)
IMAGE_STD = (58.395, 57.12, 57.375)
METHODS_FIG1 = ("none", "bn", "pws")
METHOD_LABELS = {"none": "standard", "bn": "BN", "pws": "PWS"}


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda if available, else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# --------------------------------------------------------------------------------------------- configs
@dataclass
class BackboneConfig:
    """Settings of the Figure 1/6 measurement (``SCALES_FIG16`` has the two scales)."""

    scale: str
    data: str  # "synthetic_voc" or "voc"
    data_root: str
    image_size: int
    batch_size: int
    max_images: int | None  # None: every trainval image
    lr: float = 1e-2
    pws_gamma: float = 1e-3
    methods: tuple[str, ...] = METHODS_FIG1
    input_std: tuple[float, float, float] = IMAGE_STD
    seed: int = 0
    device: str = "cpu"
    num_workers: int = 0
    synthetic_images: int = 16  # images the synthetic VOC generator writes (trainval)

    def key(self) -> dict[str, Any]:
        """What decides the numbers (a cache written with another key is not reused)."""
        d = asdict(self)
        d.pop("num_workers")
        d.pop("device")
        d["methods"] = list(d["methods"])
        d["input_std"] = list(d["input_std"])
        return d


SCALES_FIG16: dict[str, dict[str, Any]] = {
    # CPU in a few minutes: 16 generated VOC images (the generator's 320 px JPEGs resized to 160 px).
    "smoke": dict(data="synthetic_voc", data_root="data/diagnostics", image_size=160, batch_size=4,
                  max_images=16, device="cpu"),
    # The paper's setting: all of VOC07+12 trainval (16,551 images) at 320 px, batch 16 (GPU expected).
    "full": dict(data="voc", data_root="data/VOCdevkit", image_size=320, batch_size=16, max_images=None,
                 device="auto", num_workers=8),
}  # fmt: skip


@dataclass
class GammaConfig:
    """Settings of the Figure 2 training run (``SCALES_FIG2``)."""

    scale: str
    data: str  # "digits" or "cifar10"
    data_root: str
    model: str = "plain_c"
    width: float = 1.0
    gammas: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2)  # 1e-3 is the paper's CIFAR-10 value
    lr: float = 5e-2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    epochs: float = 1.0
    steps: int | None = None  # if given, the run's length in steps (else ``epochs``)
    milestones: tuple[int, ...] = ()
    layer: int = 3
    seed: int = 0
    device: str = "cpu"
    num_workers: int = 0


SCALES_FIG2: dict[str, dict[str, Any]] = {
    # CPU in a few minutes: scikit-learn's real digits (32x32), plain_c at width 0.25 (24/48 channels, the
    # classification smoke net), batch 32, 100 steps per gamma, the paper's LR 5e-2.
    "smoke": dict(data="digits", data_root="data", width=0.25, batch_size=32, steps=100,
                  gammas=(1e-4, 1e-3, 1e-2), device="cpu"),
    # The paper's CIFAR-10 setting: the full plain_c, batch 128, 200 epochs, LR x0.1 after 100, 150, 180.
    "full": dict(data="cifar10", data_root="data", width=1.0, batch_size=128, epochs=200,
                 milestones=(100, 150, 180), device="auto", num_workers=8),
}  # fmt: skip


# ------------------------------------------------------------------------------------------ VOC data
class VOCImages(torch.utils.data.Dataset):
    """VOC trainval images (VOC2007 and VOC2012, those present) resized to a square, boxes in [0, 1].

    Non-difficult objects only (SSD trains on those); labels 1..20 in ``VOC_CLASSES`` order. Images are
    ``(image - mean) / std`` of RGB pixel values in [0, 255].
    """

    def __init__(self, devkit: Path, size: int, std: Sequence[float], max_images: int | None) -> None:
        from pws.data.detection import VOC_CLASSES

        self.index = {name: i + 1 for i, name in enumerate(VOC_CLASSES)}
        self.size = size
        self.mean = torch.tensor(IMAGE_MEAN).view(3, 1, 1)
        self.std = torch.tensor(list(std)).view(3, 1, 1)
        self.items: list[tuple[Path, Path]] = []
        for year in ("VOC2007", "VOC2012"):
            ids_file = devkit / year / "ImageSets" / "Main" / "trainval.txt"
            if not ids_file.exists():
                continue
            for image_id in ids_file.read_text().split():
                self.items.append(
                    (
                        devkit / year / "JPEGImages" / f"{image_id}.jpg",
                        devkit / year / "Annotations" / f"{image_id}.xml",
                    )
                )
        if max_images is not None:
            self.items = self.items[:max_images]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Tensor, dict[str, Tensor]]:
        jpeg, xml = self.items[i]
        with Image.open(jpeg) as image:
            w, h = image.size
            resized = image.convert("RGB").resize((self.size, self.size), Image.BILINEAR)
            x = torch.from_numpy(np.asarray(resized, dtype=np.float32).copy()).permute(2, 0, 1)
        boxes, labels = [], []
        for obj in ET.parse(xml).getroot().iter("object"):
            if int(float(obj.findtext("difficult", "0") or 0)):
                continue
            bb = obj.find("bndbox")
            x1, y1, x2, y2 = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            boxes.append([(x1 - 1) / w, (y1 - 1) / h, x2 / w, y2 / h])
            labels.append(self.index[obj.findtext("name").strip()])
        target = {
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4).clamp(0, 1),
            "labels": torch.tensor(labels, dtype=torch.long),
        }
        return (x - self.mean) / self.std, target


def _collate(batch: list[tuple[Tensor, dict[str, Tensor]]]) -> tuple[Tensor, list[dict[str, Tensor]]]:
    return torch.stack([b[0] for b in batch]), [b[1] for b in batch]


def voc_devkit(cfg: BackboneConfig) -> Path:
    """The VOCdevkit to read: generated at smoke scale, the real one (or a clear error) at full scale."""
    if cfg.data == "synthetic_voc":
        from pws.data.detection.synthetic_voc import generate

        return generate(Path(cfg.data_root) / "synthetic_voc", cfg.synthetic_images, 2, seed=cfg.seed)
    from pws.data.detection import require_voc

    # Real VOC07+12 trainval: DataMissingError (naming the path and how to get VOC) when it is not there.
    return require_voc(cfg.data_root, years=("VOC2007", "VOC2012"), synthetic_ok=False)


def voc_batches(cfg: BackboneConfig) -> torch.utils.data.DataLoader:
    dataset = VOCImages(voc_devkit(cfg), cfg.image_size, cfg.input_std, cfg.max_images)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        shuffle=False,
        num_workers=cfg.num_workers,
        collate_fn=_collate,
        drop_last=False,
    )


# --------------------------------------------------------------------------------- Figures 1 and 6
def measure_backbones(cfg: BackboneConfig, log: Any = print) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Probe rows (one per method, batch and conv layer; column ``method`` added) and run info.

    For each method: seed, build, then for every batch: forward, backward, ``probe.step()``; no update.
    """
    device = resolve_device(cfg.device)
    loader = voc_batches(cfg)
    rows: list[dict[str, Any]] = []
    info: dict[str, Any] = {"device": str(device), "images": len(loader.dataset), "losses": {}, "seconds": {}}
    for method in cfg.methods:
        torch.manual_seed(cfg.seed)
        spec = NormMethod("pws", gamma=cfg.pws_gamma) if method == "pws" else NormMethod(method)
        model = SSDLike(spec).to(device).train()
        info["input_from"] = input_sources(model.backbone)
        probe = VarianceProbe(model.backbone, lr=cfg.lr)
        losses = []
        start = time.perf_counter()
        for step, (images, targets) in enumerate(loader):
            model.zero_grad(set_to_none=True)
            loss = model.loss(images.to(device), targets)
            loss.backward()
            for row in probe.step(step):
                row["method"] = method
                row["images"] = images.shape[0]
                rows.append(row)
            losses.append(float(loss.detach()))
        probe.detach()
        info["seconds"][method] = time.perf_counter() - start
        info["losses"][method] = losses
        log(f"[{cfg.scale}] {METHOD_LABELS[method]:>8}: {len(losses)} batches, "
            f"loss {np.mean(losses):.4g}, {info['seconds'][method]:.1f} s")  # fmt: skip
    return rows, info


# ------------------------------------------------------------------------------------------ Figure 2
def _batches_forever(loader: torch.utils.data.DataLoader) -> Iterator[tuple[int, Any]]:
    epoch = 0
    while True:
        for batch in loader:
            yield epoch, batch
        epoch += 1


def train_gammas(cfg: GammaConfig, log: Any = print) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Train ``plain_c`` with PWS once per gamma; one row per (gamma, step) for the probed layer."""
    from pws.data.classification import build_datasets
    from pws.models.classifiers import build_classifier
    from pws.optim import param_groups

    device = resolve_device(cfg.device)
    train, _test, num_classes = build_datasets(cfg.data, cfg.data_root)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total_steps = cfg.steps if cfg.steps is not None else max(1, round(cfg.epochs * steps_per_epoch))
    rows: list[dict[str, Any]] = []
    info: dict[str, Any] = {"device": str(device), "train_images": len(train), "steps": total_steps,
                            "steps_per_epoch": steps_per_epoch, "seconds": {}, "status": {}}  # fmt: skip
    for gamma in cfg.gammas:
        torch.manual_seed(cfg.seed)
        generator = torch.Generator().manual_seed(cfg.seed)
        loader = torch.utils.data.DataLoader(
            train,
            batch_size=cfg.batch_size,
            shuffle=True,
            drop_last=True,
            generator=generator,
            num_workers=cfg.num_workers,
        )
        model = (
            build_classifier(cfg.model, NormMethod("pws", gamma=gamma), num_classes, width=cfg.width)
            .to(device)
            .train()
        )
        optimizer = torch.optim.SGD(param_groups(model, cfg.weight_decay), lr=cfg.lr, momentum=cfg.momentum)
        milestones = [m * steps_per_epoch for m in cfg.milestones]
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=0.1)
        probe = VarianceProbe(model, lr=cfg.lr, layers=[cfg.layer], activations=False)
        start, status = time.perf_counter(), "finished"
        for step, (_epoch, (images, labels)) in enumerate(_batches_forever(loader)):
            if step >= total_steps:
                break
            probe.lr = optimizer.param_groups[0]["lr"]
            loss = torch.nn.functional.cross_entropy(model(images.to(device)), labels.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            (row,) = probe.step(step)
            row.update(gamma=gamma, epoch=step / steps_per_epoch, loss=float(loss.detach()))
            rows.append(row)
            if not math.isfinite(row["loss"]):
                status = f"diverged at step {step}"
                break
            optimizer.step()
            scheduler.step()
        probe.detach()
        info["seconds"][gamma] = time.perf_counter() - start
        info["status"][gamma] = status
        info["layer_name"] = probe.layers[0][1]
        last = rows[-1]
        log(f"[{cfg.scale}] gamma={gamma:g}: {status}, {step} steps, loss {last['loss']:.4g}, "
            f"min Var[W_o] {last['wvar_min']:.3g}, {info['seconds'][gamma]:.1f} s")  # fmt: skip
    return rows, info
