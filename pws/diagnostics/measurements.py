"""The measurements behind Figures 1, 2 and 6, at ``smoke`` or ``full`` scale.

Figures 1 and 6 (:func:`measure_backbones`): the SSD VGG-16 backbone (:mod:`pws.diagnostics.ssd_like`) in
its standard (``none``), ``bn`` and ``pws`` forms at LR 1e-2, measured as the paper did: "for every batch,
we calculate the forward process and the backward process. Then we calculate what happened when we update
the filters' gradients. We do not update the parameters" -- so every number is taken at initialization,
over many batches. PWS uses gamma = 1e-3, the paper's value at LR 1e-2 on VOC.

Figure 2 (:func:`train_gammas`): for each gamma, one classification run of :mod:`pws.classify` (the
engine, :mod:`pws.engine`) of the paper's plain net (``plain_c``, ConvPool-CNN-C) with PWS at LR 5e-2 --
otherwise the app's CIFAR-10 settings (SGD, momentum 0.9, weight decay 5e-4 except alpha, the step
schedule) -- with the variance probe attached as an mmengine hook (``probe.enabled=true``,
:class:`~pws.diagnostics.mmengine_hook.VarianceProbeHook`), which records ``min_o Var[W_o]`` and
``1 / sqrt(min_o Var[W_o] + gamma)`` of the third conv layer at every training step with the optimizer's
current LR. Each run has its own run directory (``<runs_dir>/gamma<g>``: ``metrics.json``, checkpoints,
``variance_probe.csv``); like any run of the engine it resumes when interrupted and is skipped when it has
already finished (or diverged) with the same settings.
"""

from __future__ import annotations

import math
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from pws.classify import run
from pws.classify.app import PROBE_FILE
from pws.classify.config import CONFIG_NAME
from pws.data.detection import VOC_CLASSES, require_voc
from pws.data.detection.synthetic_voc import generate
from pws.diagnostics.figures import read_csv
from pws.diagnostics.probe import VarianceProbe
from pws.diagnostics.ssd_like import SSDLike, input_sources
from pws.engine.compose import compose_config
from pws.engine.lifecycle import resolved_config
from pws.nn.factory import NormMethod
from pws.records.metrics_file import read_metrics

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
    """Settings of the Figure 2 runs (``SCALES_FIG2``), each one an override of the classification app.

    ``epochs`` is ``scale.classify.epochs`` (the app's schedule, 200 epochs with LR x0.1 after 100, 150 and
    180, shortened to that many epochs by the engine's rule; None: the schedule's own) and
    ``max_steps_per_epoch`` is ``train.max_steps_per_epoch`` (a fixed subset of that many batches; None: the
    whole training set). ``data_root`` None: the app's (``$PWS_DATA`` or ``data``). ``overrides``: further
    Hydra overrides of the app (``train.eval_every=4``, ...). ``force``: train again even if a run with the
    same settings has finished.
    """

    scale: str
    data: str  # "digits" or "cifar10" (any data set of the classification app)
    data_root: str | None = None
    model: str = "plain_c"
    width: float = 1.0
    gammas: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2)  # 1e-3 is the paper's CIFAR-10 value
    lr: float = 5e-2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    epochs: int | None = None
    max_steps_per_epoch: int | None = None
    layer: int = 3
    seed: int = 0
    device: str = "cpu"
    num_workers: int = 0
    wandb_mode: str = "disabled"  # the runs' wandb mode (the figure's CSV and metrics.json are the record)
    overrides: tuple[str, ...] = ()
    force: bool = False

    def run_overrides(self, gamma: float) -> list[str]:
        """The classification app's overrides of the run for ``gamma``."""

        def value(x: Any) -> str:
            return "null" if x is None else repr(x)

        out = [
            f"scale={self.scale}",
            f"data={self.data}",
            f"model={self.model}",
            "norm=pws",
            f"norm.gamma={gamma!r}",
            f"model.width={self.width!r}",
            f"optim.lr={self.lr!r}",
            f"optim.momentum={self.momentum!r}",
            f"optim.weight_decay={self.weight_decay!r}",
            f"data.batch_size={self.batch_size}",
            f"data.num_workers={self.num_workers}",
            f"scale.classify.epochs={value(self.epochs)}",
            f"train.max_steps_per_epoch={value(self.max_steps_per_epoch)}",
            f"train.device={self.device}",
            f"seed={self.seed}",
            f"wandb.mode={self.wandb_mode}",
            "probe.enabled=true",
            f"probe.layers=[{self.layer}]",
            "probe.interval=1",
            "probe.activations=false",
        ]
        if self.data_root is not None:
            out.append(f"data_root={self.data_root}")
        return [*out, *self.overrides]


SCALES_FIG2: dict[str, dict[str, Any]] = {
    # CPU in a few minutes: scikit-learn's real digits (32x32), plain_c at width 0.25 (24/48 channels, the
    # classification smoke net), batch 32, the paper's LR 5e-2. The length was 100 steps per gamma in the
    # hand-written loop this replaces; as epochs of the app: 4 epochs of 25 steps = exactly 100 steps (on a
    # fixed subset of 800 of the 1,437 training images, each seen 4 times). The whole set is 44 steps per
    # epoch (drop_last), so 2 or 3 whole epochs would be 88 or 132 steps. The schedule's LR steps at 100,
    # 150 and 180 of 200 epochs land at epochs 2 and 3 of 4 (LR 5e-2, then 5e-3 from step 50, 5e-4 from 75).
    "smoke": dict(data="digits", width=0.25, batch_size=32, epochs=4, max_steps_per_epoch=25,
                  gammas=(1e-4, 1e-3, 1e-2), device="cpu"),
    # The paper's CIFAR-10 setting: the full plain_c, batch 128, 200 epochs, LR x0.1 after 100, 150, 180.
    "full": dict(data="cifar10", width=1.0, batch_size=128, epochs=None, device="auto", num_workers=8),
}  # fmt: skip


# ------------------------------------------------------------------------------------------ VOC data
class VOCImages(torch.utils.data.Dataset):
    """VOC trainval images (VOC2007 and VOC2012, those present) resized to a square, boxes in [0, 1].

    Non-difficult objects only (SSD trains on those); labels 1..20 in ``VOC_CLASSES`` order. Images are
    ``(image - mean) / std`` of RGB pixel values in [0, 255].
    """

    def __init__(self, devkit: Path, size: int, std: Sequence[float], max_images: int | None) -> None:
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
        return generate(Path(cfg.data_root) / "synthetic_voc", cfg.synthetic_images, 2, seed=cfg.seed)

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
FIG2_RUNS = "figure2_runs"  # the run directories of Figure 2, under results/<scale>/


def gamma_run_dir(runs_dir: str | Path, gamma: float) -> Path:
    """The run directory of ``gamma``: ``<runs_dir>/gamma<g>`` (``gamma0.001``)."""
    return Path(runs_dir) / f"gamma{gamma:g}"


def compose_run(overrides: Sequence[str]) -> Any:
    """The classification app's config with ``overrides`` (:func:`pws.engine.compose.compose_config`)."""
    return compose_config(CONFIG_NAME, overrides)


def same_settings(run_dir: Path, cfg: Any) -> bool:
    """Whether ``run_dir``'s record was made with the config ``cfg`` (``force`` aside): then the engine may
    skip or resume it; a record of other settings is trained again from scratch."""
    import json


    record = read_metrics(run_dir)
    if record is None:
        return True  # nothing there yet (or an unreadable record: the engine names it)
    new = json.loads(json.dumps(resolved_config(cfg)))
    old = dict(record.get("config") or {})
    new.pop("force", None)
    old.pop("force", None)
    return old == new


def probe_rows(path: Path, gamma: float) -> list[dict[str, Any]]:
    """The hook's CSV as Figure 2 rows: ``step`` = the iteration, ``gamma`` = the run's gamma."""
    rows = read_csv(path) if path.exists() else []
    for row in rows:
        row.update(step=int(row["iter"]), gamma=gamma)
    return rows


def steps_per_epoch(rows: Sequence[dict[str, Any]], record: dict[str, Any]) -> int | None:
    """Training iterations per epoch of a run: from its rows (``iter / epoch``), else its first epoch's
    record (None if it has neither)."""
    for row in rows:
        if row["epoch"] and row["epoch"] > 0:
            return round(row["iter"] / row["epoch"])
    history = record.get("history") or []
    return int(history[0]["iter"]) if history else None


def run_status(record: dict[str, Any], rows: Sequence[dict[str, Any]]) -> str:
    """``finished`` or ``diverged at step N`` (N: the 0-based step whose loss was not finite)."""
    if record.get("status") != "diverged":
        return str(record.get("status"))
    bad = [r["step"] for r in rows if not (isinstance(r["loss"], float | int) and math.isfinite(r["loss"]))]
    return f"diverged at step {bad[0]}" if bad else f"diverged ({record.get('diverged_at')})"


def train_gammas(
    cfg: GammaConfig, runs_dir: str | Path, log: Any = print
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One classification run per gamma (``<runs_dir>/gamma<g>``); one row per (gamma, step) for the probed
    layer, read back from each run's ``variance_probe.csv``, and the runs' info (status from metrics.json)."""
    rows: list[dict[str, Any]] = []
    info: dict[str, Any] = {"seconds": {}, "status": {}, "runs": {}, "top1_error": {}}
    for gamma in cfg.gammas:
        run_dir = gamma_run_dir(runs_dir, gamma)
        overrides = cfg.run_overrides(gamma)
        composed = compose_run(overrides)
        if cfg.force or not same_settings(run_dir, composed):
            overrides = [*overrides, "force=true"]
            composed = compose_run(overrides)
        start = time.perf_counter()
        record = run(composed, run_dir, overrides)
        seconds = time.perf_counter() - start
        got = probe_rows(run_dir / PROBE_FILE, gamma)
        status = run_status(record, got)
        per_epoch = steps_per_epoch(got, record)
        info["seconds"][gamma] = seconds
        info["status"][gamma] = status
        info["runs"][gamma] = str(run_dir)
        info["top1_error"][gamma] = record.get("top1_error")
        info.update(device=record.get("device"), epochs=record.get("epochs"),
                    milestones=(record.get("plan") or {}).get("milestones"))  # fmt: skip
        if per_epoch is not None:
            info["steps_per_epoch"] = per_epoch
            info["steps"] = per_epoch * int(record.get("epochs") or 0)
        if got:
            info["layer_name"] = got[0]["name"]
        rows.extend(got)
        last = got[-1] if got else {"loss": math.nan, "wvar_min": math.nan}
        log(f"[{cfg.scale}] gamma={gamma:g}: {status}, {len(got)} steps, loss {last['loss']:.4g}, "
            f"min Var[W_o] {last['wvar_min']:.3g}, {seconds:.1f} s ({run_dir})")  # fmt: skip
    return rows, info
