"""The cost of a table before it runs (``reproduce_table.py tableN --plan``): device-hours per cell, in all.

For every cell of a table at a scale, the cell's config is composed and validated as its app would (Hydra,
then the app's own validation), which gives the epochs (the schedule, shortened by the scale), the global
batch, the data set and the cell's *kind* (app, network, method, input size). Then

    training images = epochs x images per epoch      (CIFAR/ImageNet: whole batches, drop_last;
                                                      capped by train.max_steps_per_epoch)
    device-hours    = training images / throughput (images/s) x seeds / 3600

Evaluation, data preparation and start-up are not counted. The throughput of a kind is read from the
measured tables in ``bench/results/`` (``bench_classify_*``: the networks of Tables 4 and 5;
``bench_layers_*``: the VGG-16 conv stack at a size and batch, SSD320-VGG16's backbone without the SSD
head, loss and data pipeline, so its hours are a lower bound), naming the file, or measured now on the
machine at hand (``--measure``: a few training steps of each kind). Nothing is launched.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pws.engine.compose import compose_config
from pws.paper.experiments import REPO_ROOT, Table

RESULTS_DIR = REPO_ROOT / "bench" / "results"
# The GPU tables read by default (a list of files: the first that has a kind gives its throughput).
DEFAULT_THROUGHPUT = (RESULTS_DIR / "bench_classify_h200.txt", RESULTS_DIR / "bench_layers_h200_rerun.txt")
# Training images of the real data sets (per epoch). COCO: train2017's images with annotations, what mmdet
# trains on (filter_empty_gt); VOC: VOC2007 + VOC2012 trainval.
TRAIN_IMAGES = {"cifar10": 50_000, "imagenet": 1_281_167, "voc0712": 16_551, "coco": 117_266}
DIGITS = 1797  # scikit-learn's digits, before the stratified train/test split
VGG_STACK = "vgg16_stack"  # bench_layers' network: VGG-16's 13 conv layers (SSD's backbone)
# A detection model -> the measured network that stands in for it (with what it leaves out).
DETECT_PROXY = {
    "ssd_vgg16": (VGG_STACK, "VGG-16 backbone only (no SSD head, loss, data): the detector takes longer"),
}

_SECTION = re.compile(r"^##\s+(?P<what>[\w ]+?),\s*(?P<size>\d+)x(?P=size),\s*batch\s+(?P<batch>\d+)")
_ROW = re.compile(r"^\|\s*(?P<method>[a-z]+)\s*\|\s*[\d.]+\s*\|\s*(?P<ips>[\d.]+)\s*\|")


@dataclass(frozen=True)
class Kind:
    """What sets a cell's speed: the network, the method, the input size and the batch."""

    app: str
    model: str
    method: str
    size: int
    batch: int
    model_kwargs: tuple[tuple[str, Any], ...] = ()  # the network's options (the smoke scale's widths)

    def label(self) -> str:
        return f"{self.model} {self.method} {self.size}x{self.size} bs{self.batch}"


@dataclass(frozen=True)
class Throughput:
    """Training images/s of one measured network at one size and batch, and where it comes from."""

    model: str
    method: str
    size: int
    batch: int
    images_per_s: float
    source: str  # the file (or "measured now on <device>")
    device: str  # "NVIDIA H200", "cpu", ...


@dataclass
class CellCost:
    """One cell: its kind, its training images per seed and what it costs."""

    cell: str
    kind: Kind
    epochs: int
    images_per_epoch: int
    seeds: int
    throughput: Throughput | None = None
    note: str = ""

    @property
    def images(self) -> int:
        return self.epochs * self.images_per_epoch

    @property
    def hours(self) -> float | None:
        """Device-hours of all the cell's seeds (None without a throughput)."""
        if self.throughput is None:
            return None
        return self.images / self.throughput.images_per_s * self.seeds / 3600.0


@dataclass
class TableCost:
    table: str
    scale: str
    cells: list[CellCost] = field(default_factory=list)

    @property
    def hours(self) -> float:
        return sum(c.hours for c in self.cells if c.hours is not None)

    @property
    def unknown(self) -> list[CellCost]:
        return [c for c in self.cells if c.hours is None]


# ------------------------------------------------------------------------------------------- throughput


def read_throughput(path: str | Path) -> list[Throughput]:
    """The training images/s of every (network, method, size, batch) in a ``bench_classify`` or
    ``bench_layers`` output: sections ``## <network>, <S>x<S>, batch <B>`` (``## training, ...`` in
    bench_layers: the VGG-16 stack), rows ``| method | median step (ms) | images/s | ...``."""
    path = Path(path)
    lines = path.read_text().splitlines()
    header = "\n".join(lines[:3])
    layers = "bench-layers" in header or "bench-fused" in header
    device = "cpu"
    match = re.search(r"device (\S+)", header)
    if match and match.group(1) != "cpu":
        gpu = re.search(r"(NVIDIA [^;,\n]+)", header)
        device = gpu.group(1).strip() if gpu else match.group(1)
    out: list[Throughput] = []
    section: tuple[str, int, int] | None = None
    for line in lines:
        if line.startswith("## "):
            m = _SECTION.match(line)
            section = None
            if m and (not layers or m.group("what") == "training"):
                model = VGG_STACK if layers else m.group("what").strip()
                section = (model, int(m.group("size")), int(m.group("batch")))
            continue
        row = _ROW.match(line)
        if section and row:
            model, size, batch = section
            out.append(Throughput(model, row.group("method"), size, batch, float(row.group("ips")),
                                  str(_shown(path)), device))  # fmt: skip
    return out


def _shown(path: Path) -> Path:
    try:
        return path.resolve().relative_to(REPO_ROOT)
    except ValueError:
        return path


def lookup(
    measured: Iterable[Throughput], model: str, method: str, size: int, batch: int
) -> Throughput | None:
    """The measurement of (model, method) at this size, the same batch preferred, else the nearest batch."""
    same = [t for t in measured if (t.model, t.method, t.size) == (model, method, size)]
    if not same:
        return None
    return min(same, key=lambda t: (abs(math.log(t.batch / batch)), t.batch))


# ------------------------------------------------------------------------------------------- the cells


def classify_cost(overrides: list[str]) -> tuple[Kind, int, int]:
    """(kind, epochs, training images per epoch) of a classification cell, from its validated plan."""
    from pws.classify.config import make_plan

    plan = make_plan(compose_config("classify", overrides), world_size=1)
    kw = {**plan.model_kwargs, **plan.data_kwargs}
    if plan.data in TRAIN_IMAGES:
        images = TRAIN_IMAGES[plan.data]
    elif plan.data == "digits":
        images = DIGITS - math.ceil(DIGITS * float(kw.get("test_fraction", 0.2)))
    else:
        images = int(kw["num_train"])
    if kw.get("train_size"):
        images = min(images, int(kw["train_size"]))
    steps = images // plan.batch_size if plan.drop_last else math.ceil(images / plan.batch_size)
    if plan.max_steps_per_epoch is not None:
        steps = min(steps, plan.max_steps_per_epoch)
    size = int(kw.get("crop_size") or kw.get("image_size") or 32)
    options = tuple(sorted((k, v) for k, v in plan.model_kwargs.items() if not isinstance(v, (list, dict))))
    kind = Kind("classify", plan.model, plan.method.method, size, plan.batch_size, options)
    return kind, plan.schedule.epochs, steps * plan.batch_size


def detect_cost(overrides: list[str]) -> tuple[Kind, int, int]:
    """(kind, epochs, training images per epoch) of a detection cell, from its validated settings."""
    from pws.detect.config import detection_settings
    from pws.engine.schema import Validator, common_values, plain

    cfg = plain(compose_config("detect", overrides))
    v = Validator(cfg)
    settings = detection_settings(v, common_values(v)["seed"])
    v.raise_if_failed()
    assert settings is not None
    data = cfg["data"]
    images = TRAIN_IMAGES.get(settings.data) or int(data["num_train"])
    size = settings.input_size if isinstance(settings.input_size, int) else max(settings.input_size)
    kind = Kind("detect", settings.model, settings.method.method, int(size), settings.batch_size)
    return kind, settings.schedule.epochs, images  # mmdet's loaders keep the last partial batch


def table_cost(
    table: Table,
    scale: str,
    seeds: int,
    measured: list[Throughput],
    *,
    grid: str | None = None,
    cells: list[str] | None = None,
    extra_overrides: list[str] | None = None,
    measure: Callable[[Kind], Throughput | None] | None = None,
) -> TableCost:
    """The cost of every cell of ``table`` at ``scale``, throughputs from ``measured`` (or ``measure``)."""
    from pws.results.reproduce import merge_overrides

    out = TableCost(table.name, scale)
    measured_now: dict[Kind, Throughput | None] = {}
    for cell in table.cells(scale, grid):
        if cells and cell.id not in cells:
            continue
        overrides = merge_overrides([*cell.overrides, *(extra_overrides or [])])
        app = cell.app.rsplit(".", 1)[-1]
        kind, epochs, per_epoch = (classify_cost if app == "classify" else detect_cost)(overrides)
        cost = CellCost(cell.id, kind, epochs, per_epoch, seeds)
        model, note = (kind.model, "") if app == "classify" else DETECT_PROXY.get(kind.model, (None, ""))
        if measure is not None:
            if kind not in measured_now:
                measured_now[kind] = measure(kind)
            cost.throughput = measured_now[kind]
        elif model is not None:
            cost.throughput = lookup(measured, model, kind.method, kind.size, kind.batch)
        if cost.throughput is None:
            note = "no measured throughput for this kind (--measure on a machine that runs it)"
        elif cost.throughput.batch != kind.batch:
            note = f"measured at batch {cost.throughput.batch}" + (f"; {note}" if note else "")
        cost.note = note
        out.cells.append(cost)
    return out


def format_cost(cost: TableCost, printer: Callable[[str], None] = print) -> None:
    """Each cell's kind, throughput (and its source), training images and device-hours; the total."""
    devices = sorted({c.throughput.device for c in cost.cells if c.throughput is not None})
    unit = "CPU-hours" if devices == ["cpu"] else "GPU-hours"
    seeds = cost.cells[0].seeds if cost.cells else 0
    printer(f"{cost.table} at {cost.scale} scale: {len(cost.cells)} cells x {seeds} seed(s); nothing is "
            f"launched. hours = epochs x images per epoch / images per s x seeds / 3600 "
            f"(training only; on {', '.join(devices) or 'no measured device'})")  # fmt: skip
    printer(f"| cell | kind | epochs | images/epoch | images/s | {unit} | throughput from |")
    printer("|---|---|--:|--:|--:|--:|---|")
    for c in cost.cells:
        ips = f"{c.throughput.images_per_s:,.1f}" if c.throughput else "-"
        hours = _hours(c.hours) if c.hours is not None else "?"
        src = c.throughput.source if c.throughput else "-"
        printer(f"| {c.cell} | {c.kind.label()} | {c.epochs} | {c.images_per_epoch:,} | {ips} | {hours} | "
                f"{src}{'; ' + c.note if c.note else ''} |")  # fmt: skip
    by_source = sorted({c.throughput.source for c in cost.cells if c.throughput})
    printer(f"total: {_hours(cost.hours)} {unit} for {len(cost.cells) - len(cost.unknown)} cells"
            + (f"; {len(cost.unknown)} cells without a throughput not counted" if cost.unknown else "")
            + (f" (throughputs from {', '.join(by_source)})" if by_source else ""))


def _hours(h: float) -> str:
    return f"{h:,.2f}" if h >= 0.1 or h == 0 else f"{h:.2g}"


# ------------------------------------------------------------------------------------------- --measure


def measure_kind(kind: Kind, device: str = "cpu", steps: int = 3, warmup: int = 1) -> Throughput | None:
    """Training images/s of ``kind`` measured now: the median of ``steps`` training steps (forward, loss,
    backward, SGD) on random inputs after ``warmup``, on ``device``. Classification: the cell's network;
    SSD320-VGG16: its VGG-16 backbone (a lower bound); other detectors: None (not measurable here)."""
    import statistics

    import torch
    import torch.nn.functional as F

    from pws.models.classifiers import build_classifier
    from pws.models.vgg import vgg16_features
    from pws.nn import NormMethod

    dev = torch.device(device)
    if kind.app == "classify":
        classes = 1000 if kind.model == "resnet50" else 10
        net = build_classifier(kind.model, NormMethod(kind.method), classes, **dict(kind.model_kwargs))
        net = net.to(dev)

        def loss_of(x: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(net(x), torch.zeros(x.shape[0], dtype=torch.long, device=dev))
    elif kind.model in DETECT_PROXY:
        net = vgg16_features(NormMethod(kind.method)).to(dev)

        def loss_of(x: torch.Tensor) -> torch.Tensor:
            return net(x).float().square().mean()
    else:
        return None
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(kind.batch, 3, kind.size, kind.size, device=dev)
    times = []
    for i in range(warmup + steps):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss_of(x).backward()
        optimizer.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    model = kind.model if kind.app == "classify" else VGG_STACK
    return Throughput(model, kind.method, kind.size, kind.batch, kind.batch / statistics.median(times),
                      f"measured now on {name} ({steps} steps)", name)  # fmt: skip
