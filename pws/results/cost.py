"""The cost of a table before it runs (``reproduce_table.py tableN --plan``): device-hours per cell, in all.

For every cell of a table at a scale, the cell's config is composed and validated as its app would (Hydra,
then the app's own validation), which gives the epochs (the schedule, shortened by the scale), the global
batch, the data set and the cell's *kind* (app, network, method, input size, batch). Then

    training images = epochs x images per epoch      (CIFAR/ImageNet: whole batches, drop_last;
                                                      capped by train.max_steps_per_epoch)
    device-hours    = training images / throughput (images/s) x seeds / 3600

Evaluation, data preparation and start-up are not counted. A run is counted once: a cell whose config
(its fingerprint, :mod:`pws.results.shared`) is that of a cell counted before it, in its table or in a table
planned before it in the same call, costs nothing and names that cell (the driver uses one run for both).
The throughput of a kind is the whole app's: read from a rehearsal table (:mod:`pws.results.rehearsal`'s
CSV: the app trained at the cell's full-scale config for a few iterations; ``bench/results/rehearsal/``
keeps the measured ones), naming the file, the device and the date, or measured now (``--measure``: a
rehearsal of one cell per kind). A kind measured only for another method, on another data set (SSD on VOC
for SSD on COCO: another head) or at another batch takes the nearest measurement and says so: measured at
another batch, its images/s are taken as they are (the cost of an image does not depend on the batch; on a
CPU, where a full batch costs too much to rehearse, the rehearsal runs a smaller one, ``--batch``). Nothing
is launched.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pws.classify.config import make_plan
from pws.detect.app import checked_plan
from pws.engine.compose import compose_config
from pws.paper.experiments import REPO_ROOT, Table
from pws.results.reproduce import merge_overrides
from pws.results.shared import cell_fingerprint

# The measured rehearsal tables read by default (every CSV there; a GPU's measurement before a CPU's).
REHEARSALS_DIR = REPO_ROOT / "bench" / "results" / "rehearsal"
# Training images of the real data sets (per epoch). COCO: train2017's images with annotations, what mmdet
# trains on (filter_empty_gt); VOC: VOC2007 + VOC2012 trainval.
TRAIN_IMAGES = {"cifar10": 50_000, "imagenet": 1_281_167, "voc0712": 16_551, "coco": 117_266}
DIGITS = 1797  # scikit-learn's digits, before the stratified train/test split
# The generated stand-in of each real data set (a rehearsal without the data trains on it; its speed counts
# for the real set's cells).
STANDIN_OF = {"voc0712": "synthetic_voc", "coco": "synthetic_coco", "cifar10": "synthetic_cifar",
              "imagenet": "synthetic_imagenet"}  # fmt: skip


def real_data(name: str) -> str:
    """The real data set that data config ``name`` is or stands in for (``synthetic_coco`` -> ``coco``)."""
    return {standin: real for real, standin in STANDIN_OF.items()}.get(name, name)


@dataclass(frozen=True)
class Kind:
    """What sets a cell's speed: the network, the method, the input size, the batch and the data set (the
    real one a stand-in stands for: its number of classes)."""

    app: str
    model: str
    method: str
    size: int
    batch: int
    model_kwargs: tuple[tuple[str, Any], ...] = ()  # the network's options (the smoke scale's widths)
    data: str = ""

    def label(self) -> str:
        return f"{self.model} {self.method} {self.size}x{self.size} bs{self.batch}"


@dataclass(frozen=True)
class Throughput:
    """Training images/s of one cell kind measured with its app at one batch, and where it comes from."""

    model: str
    method: str
    size: int
    batch: int
    images_per_s: float
    source: str  # the file, the device and the date (or "measured now ...")
    device: str  # "NVIDIA H200", "cpu, 2 threads", ...
    data: str = ""  # the real data set (that of the stand-in it was measured on)


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
    shared_with: str | None = None  # the cell counted before with the same config ("table2 lr1e-2/vgg16/bn")

    @property
    def images(self) -> int:
        return self.epochs * self.images_per_epoch

    @property
    def hours(self) -> float | None:
        """Device-hours of all the cell's seeds (None without a throughput; 0 for a shared run)."""
        if self.shared_with is not None:
            return 0.0
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


def default_throughput_files() -> list[Path]:
    """The rehearsal tables kept in ``bench/results/rehearsal/``."""
    return sorted(REHEARSALS_DIR.glob("*.csv"))


def read_throughput(path: str | Path) -> list[Throughput]:
    """The images/s of every cell that rehearsed ``ok`` in a rehearsal table (its CSV), by kind."""
    path = Path(path)
    out = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("status") != "ok" or not row.get("images_per_s"):
                continue
            source = f"{_shown(path)} ({row['device']}, {row['date']})"
            out.append(Throughput(row["model"], row["method"], int(row["input_size"]), int(row["batch"]),
                                  float(row["images_per_s"]), source, row["device"],
                                  real_data(row.get("data") or "")))  # fmt: skip
    return out


def _shown(path: Path) -> Path:
    try:
        return path.resolve().relative_to(REPO_ROOT)
    except ValueError:
        return path


def lookup(measured: Iterable[Throughput], kind: Kind) -> tuple[Throughput | None, str]:
    """The measurement of ``kind`` and a note: of the same network and size, the same method preferred, then
    the same data set, then the nearest batch (a GPU's before a CPU's at equal distance)."""
    same = [t for t in measured if (t.model, t.size) == (kind.model, kind.size)]
    if not same:
        return None, ""
    best = min(same, key=lambda t: (t.method != kind.method, t.data != kind.data,
                                    abs(math.log(t.batch / kind.batch)), t.device.startswith("cpu"), t.batch))
    notes = [f"measured for {best.method}"] if best.method != kind.method else []
    notes += [f"measured on {best.data}"] if best.data != kind.data else []
    if best.batch != kind.batch:
        notes.append(f"measured at batch {best.batch}, its images/s taken for batch {kind.batch}")
    return best, "; ".join(notes)


# ------------------------------------------------------------------------------------------- the cells


def classify_cost(overrides: list[str]) -> tuple[Kind, int, int]:
    """(kind, epochs, training images per epoch) of a classification cell, from its validated plan."""
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
    data = real_data(plan.data)
    kind = Kind("classify", plan.model, plan.method.method, size, plan.batch_size, options, data)
    return kind, plan.schedule.epochs, steps * plan.batch_size


def detect_cost(overrides: list[str]) -> tuple[Kind, int, int]:
    """(kind, epochs, training images per epoch) of a detection cell, from its validated plan."""
    plan = checked_plan(compose_config("detect", overrides), world_size=1)
    settings, data = plan.settings, plan.data
    images = TRAIN_IMAGES.get(settings.data) or int(data["num_train"])
    size = settings.input_size if isinstance(settings.input_size, int) else max(settings.input_size)
    kind = Kind("detect", settings.model, settings.method.method, int(size), settings.batch_size,
                data=real_data(settings.data))
    return kind, settings.schedule.epochs, images  # mmdet's loaders keep the last partial batch


def cell_kind(app: str, overrides: list[str]) -> tuple[Kind, int, int]:
    """(kind, epochs, training images per epoch) of a cell of ``app`` (classify or detect)."""
    return (classify_cost if app == "classify" else detect_cost)(overrides)


def table_cost(
    table: Table,
    scale: str,
    seeds: int,
    measured: list[Throughput],
    *,
    grid: str | None = None,
    cells: list[str] | None = None,
    extra_overrides: list[str] | None = None,
    counted: dict[str, str] | None = None,
) -> TableCost:
    """The cost of every cell of ``table`` at ``scale``, each kind's throughput from ``measured``.
    ``counted``: the fingerprints of the cells counted already (by earlier calls: several tables planned
    together), with the cell each names; a cell of one of them costs nothing; updated with this table's."""
    counted = {} if counted is None else counted
    out = TableCost(table.name, scale)
    for cell in table.cells(scale, grid):
        if cells and cell.id not in cells:
            continue
        overrides = merge_overrides([*cell.overrides, *(extra_overrides or [])])
        kind, epochs, per_epoch = cell_kind(cell.app.rsplit(".", 1)[-1], overrides)
        cost = CellCost(cell.id, kind, epochs, per_epoch, seeds)
        cost.throughput, cost.note = lookup(measured, kind)
        if cost.throughput is None:
            cost.note = "no rehearsal of this kind (--rehearse or --measure on a machine that runs it)"
        fp = cell_fingerprint(cell.app, overrides, 0)
        if fp is not None and fp in counted:
            cost.shared_with = counted[fp]
            cost.note = f"the run of {counted[fp]} (same config): counted there"
        elif fp is not None:
            counted[fp] = f"{table.name} {cell.id}"
        out.cells.append(cost)
    return out


def format_cost(cost: TableCost, printer: Callable[[str], None] = print) -> None:
    """Each cell's kind, throughput (and its source), training images and device-hours; the total."""
    devices = sorted({c.throughput.device for c in cost.cells if c.throughput is not None})
    gpus = [d for d in devices if not d.startswith("cpu")]
    unit = "GPU-hours" if gpus and len(gpus) == len(devices) else "CPU-hours" if not gpus else "device-hours"
    seeds = cost.cells[0].seeds if cost.cells else 0
    printer(f"{cost.table} at {cost.scale} scale: {len(cost.cells)} cells x {seeds} seed(s); nothing is "
            f"launched. hours = epochs x images per epoch / images per s x seeds / 3600 "
            f"(training only; on {', '.join(devices) or 'no measured device'})")  # fmt: skip
    printer(f"| cell | kind | epochs | images/epoch | images/s | {unit} | throughput from |")
    printer("|---|---|--:|--:|--:|--:|---|")
    for c in cost.cells:
        ips = rate(c.throughput.images_per_s) if c.throughput else "-"
        hours = _hours(c.hours) if c.hours is not None else "?"
        hours += " (shared)" if c.shared_with else ""
        src = c.throughput.source if c.throughput else "-"
        printer(f"| {c.cell} | {c.kind.label()} | {c.epochs} | {c.images_per_epoch:,} | {ips} | {hours} | "
                f"{src}{'; ' + c.note if c.note else ''} |")  # fmt: skip
    by_source = sorted({c.throughput.source for c in cost.cells if c.throughput})
    shared = sum(1 for c in cost.cells if c.shared_with)
    printer(f"total: {_hours(cost.hours)} {unit} for {len(cost.cells) - len(cost.unknown)} cells"
            + (f" ({shared} of them shared with cells counted before: 0)" if shared else "")
            + (f"; {len(cost.unknown)} cells without a throughput not counted" if cost.unknown else "")
            + (f" (throughputs from {', '.join(by_source)})" if by_source else ""))


def rate(images_per_s: float) -> str:
    """Images/s as printed: one decimal, or three significant digits below 1 (a CPU's 0.0144, not 0.0)."""
    return f"{images_per_s:,.1f}" if images_per_s >= 1 else f"{images_per_s:.3g}"


def _hours(h: float) -> str:
    return f"{h:,.2f}" if h >= 0.1 or h == 0 else f"{h:.2g}"
