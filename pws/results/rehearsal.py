"""A rehearsal of a table's full-scale cells before the cluster: ``reproduce_table.py TABLE --scale full
--rehearse``.

Every cell of the full grid (or those named) runs through its app as a real run does (the table driver's
Hydra multirun, the chosen launcher, :mod:`pws.engine`'s lifecycle) with its full-scale config unchanged
(width, input size, per-process batch, augmentation, model, evaluator) except for its length:

* one epoch of ``iters`` training iterations (default :data:`DEFAULT_ITERS`; the first
  :data:`WARMUP_ITERS` warm up, the rest are timed) on a fixed subset of ``iters x batch`` training images
  (classify: ``train.max_steps_per_epoch``; detect: ``data.train_size``);
* one evaluation over ``eval_images`` test images (``data.test_size``);
* wandb off, and the runs in ``<runs>/rehearsal/full/<table>/<cell>/seed0``: no results table reads them.

Data: the user's where the cell's data root (``--data-root``, else the config's) exists; else a generated
stand-in in the real format and at full size (:data:`STANDINS`: the real number of classes, the real image
sizes of :mod:`pws.data.real_sizes` in both orientations and the real files' quirks of
:mod:`pws.data.quirks`; CIFAR-10's 32x32 images in its five pickle batches) under ``<runs>/rehearsal/data``.
A Mask R-CNN cell whose Table 5 run is not there starts from a random ResNet-50 of its method, and its note
says so. Stand-ins are generated once (the same options reuse the files).
``batch`` (``--batch``) rehearses at another per-process batch than
the cell's (a CPU's CI); the note states it.

``<out>/rehearsal/<table>.md`` and ``.csv``: per cell its status (``ok``, or the failure's class and last
line), seconds per iteration and images/s over the timed iterations, peak memory (CUDA's max allocated on a
GPU, the training process' peak RSS on a CPU), the device, and the device-hours of one seed of the full run
at that speed (training only, :mod:`pws.results.cost`'s image counts). ``--plan`` reads these tables.
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pws.engine.compose import compose_config
from pws.paper.experiments import REPO_ROOT, Cell, Table, load_table
from pws.records.metrics_file import read_metrics
from pws.results.backbones import CHECKPOINT_KEY, ensure_exported, resolve
from pws.results.cost import Kind, Throughput, cell_kind, rate, read_throughput
from pws.results.reproduce import execute, merge_overrides, plan
from pws.transfer.backbone import mmdet_resnet50

DEFAULT_ITERS = 5    # training iterations per cell: WARMUP_ITERS, then the timed ones
WARMUP_ITERS = 2     # left out of the timing (loader start-up, first allocations); fewer when iters is small
EVAL_IMAGES = 4      # test images of the one evaluation
FOLDER = "rehearsal"  # <runs>/rehearsal/, <out>/rehearsal/
COLUMNS = ("cell", "status", "seconds_per_iter", "images_per_s", "peak_memory_mb", "device", "device_hours")
MORE_COLUMNS = ("train_loss", "timed_iters", "batch", "app", "model", "method", "input_size", "data", "date",
                "note")  # fmt: skip


@dataclass(frozen=True)
class StandIn:
    """The generated set that stands in for a real one: its data config, the keys of its two sizes, and the
    options that make it the real one's shape."""

    name: str
    train_key: str
    test_key: str
    options: tuple[tuple[str, Any], ...] = ()
    min_images: int = 1  # each split's least size (VOC: a test image without objects; ImageNet: one a class)


FULL_SIZE = (("quirks", True), ("real_sizes", True))  # the real files' odd formats and image sizes
STANDINS = {
    "voc0712": StandIn("synthetic_voc", "num_train", "num_test", (("num_classes", 20), *FULL_SIZE),
                       min_images=2),
    "coco": StandIn("synthetic_coco", "num_train", "num_val", (("num_classes", 80), *FULL_SIZE),
                    min_images=2),
    "cifar10": StandIn("synthetic_cifar", "num_train", "num_test", min_images=5),  # 5 data_batch files
    "imagenet": StandIn("synthetic_imagenet", "num_train", "num_val", (("num_classes", 1000), *FULL_SIZE),
                        min_images=1000),
}  # fmt: skip


@dataclass
class Rehearsed:
    """One cell's rehearsal (a row of the table)."""

    cell: str
    status: str
    seconds_per_iter: float = math.nan
    images_per_s: float = math.nan
    peak_memory_mb: float = math.nan
    device: str = ""
    device_hours: float = math.nan
    train_loss: float = math.nan
    timed_iters: int = 0
    batch: int = 0
    app: str = ""
    model: str = ""
    method: str = ""
    input_size: int = 0
    data: str = ""
    date: str = field(default_factory=lambda: time.strftime("%Y-%m-%d"))
    note: str = ""
    run_dir: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class Options:
    """How the cells are rehearsed (see the module)."""

    iters: int = DEFAULT_ITERS
    eval_images: int = EVAL_IMAGES
    batch: int | None = None          # per-process batch instead of the cell's (stated in the note)
    data_root: str | None = None      # the user's data root (else the config's)
    launcher: str = "local"
    runs_root: str = "runs"           # the real runs (Table 5's backbones); rehearsals go to <runs>/rehearsal
    standins: str | None = None       # where generated stand-ins live (default <runs>/rehearsal/data)
    device: str | None = None         # cuda or cpu (default: cuda if there is one)
    stream: bool = False

    @property
    def warmup(self) -> int:
        return min(WARMUP_ITERS, self.iters - 1)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def rehearse(
    table_name: str,
    options: Options,
    *,
    cells: list[str] | None = None,
    extra_overrides: list[str] | None = None,
    backbone_seed: int = 0,
    printer: Callable[[str], None] = print,
) -> list[Rehearsed]:
    """Rehearse the full-scale cells of ``table_name`` (or ``cells``), one after the other."""
    if options.iters < 1 or options.eval_images < 1:
        raise ValueError(f"iters and eval images must be >= 1, got {options.iters} and {options.eval_images}")
    table = load_table(table_name)
    todo = [c for c in table.cells("full", None) if not cells or c.id in cells]
    unknown = sorted(set(cells or ()) - {c.id for c in todo})
    if unknown:
        raise KeyError(f"{table_name} has no full-scale cells {unknown}")
    device = options.device or default_device()
    mmcv_problem = mmcv_cuda_problem() if device.startswith("cuda") and table.app == "pws.detect" else None
    printer(f"Rehearsal of {table.title}: {len(todo)} cells at full scale, {options.iters} iterations "
            f"({options.warmup} warm-up) and an evaluation over {options.eval_images} test images each, on "
            f"{device}, launcher {options.launcher}; runs in {Path(options.runs_root) / FOLDER}")  # fmt: skip
    out = []
    for i, cell in enumerate(todo, 1):
        if mmcv_problem is not None:
            row = Rehearsed(cell.id, f"mmcv ops without CUDA: {mmcv_problem}", device=device)
        else:
            row = rehearse_cell(table, cell, options, device, extra_overrides or [], backbone_seed)
        out.append(row)
        printer(f"[{i}/{len(todo)}] {cell.id}: {summary(row)}")
    return out


def measure(table: Table, options: Options, scale: str, *, cells: list[str] | None = None,
            extra_overrides: list[str] | None = None, out_root: str | Path = "results") -> list[Throughput]:
    """``--plan --measure``: one rehearsal of each cell kind of ``table`` (its first cell), written to
    ``<out>/rehearsal/<table>_kinds.*``; their throughputs."""
    if scale != "full":
        raise ValueError(f"--measure rehearses full-scale cells; the plan is at {scale} scale (--scale full)")
    first: dict[Kind, str] = {}
    for cell in table.cells("full", None):
        if not cells or cell.id in cells:
            overrides = merge_overrides([*cell.overrides, *(extra_overrides or [])])
            first.setdefault(cell_kind(cell.app.rsplit(".", 1)[-1], overrides)[0], cell.id)
    rows = rehearse(table.name, options, cells=list(first.values()), extra_overrides=extra_overrides)
    return read_throughput(write_table(f"{table.name}_kinds", rows, out_root, options)["csv"])


def rehearse_cell(table: Table, cell: Cell, options: Options, device: str, extra: list[str],
                  backbone_seed: int) -> Rehearsed:  # fmt: skip
    """One cell through the table driver's launch (its app, Hydra, the launcher); its row."""
    root = Path(options.runs_root) / FOLDER
    data_root = [f"data_root={Path(options.data_root).resolve()}"] if options.data_root else []
    base = merge_overrides([*cell.overrides, *extra, *data_root])
    app = cell.app.rsplit(".", 1)[-1]
    try:
        cfg = composed(app, base)
        kind, epochs, per_epoch = cell_kind(app, base)
    except Exception as e:  # noqa: BLE001 - a config that does not compose is the cell's failure
        return Rehearsed(cell.id, failure(e), device=device)
    batch = options.batch or kind.batch
    notes = [f"batch {batch} per process instead of the cell's {kind.batch}"] if batch != kind.batch else []
    overrides = [*length_overrides(app, options, batch), *device_overrides(cfg, device)]
    data, data_notes = data_overrides(cfg, options, batch, Path(options.standins or root / "data"))
    overrides += data
    notes += data_notes
    if app == "detect":
        backbone, note = backbone_override(table, cell, cfg, base, options, root / "backbones", backbone_seed)
        overrides += backbone
        notes += [note] if note else []
    launch = plan(table, "full", [0], runs_root=root, launcher=options.launcher, force=True,
                  extra_overrides=[*base, *overrides], cells=[cell.id])[0]  # fmt: skip
    execute(launch, scale="full", stream=options.stream, env=launch_env(device))
    run_dir = launch.sweep_dir / "seed0"
    record = read_metrics(run_dir) or {}
    row = from_record(cell.id, record, launch.error, kind, batch, epochs * per_epoch)
    row.device = row.device or device
    row.data = str(dict(parse(o) for o in base + overrides).get("data", ""))
    row.note = "; ".join(notes)
    row.run_dir = str(run_dir)
    return row


def launch_env(device: str) -> dict[str, str]:
    """The apps' environment: wandb off whatever the user's WANDB_MODE (a rehearsal is never logged), and
    no GPU visible for a rehearsal on the CPU (the detection app takes a GPU when it sees one)."""
    env = {**os.environ, "WANDB_MODE": "disabled"}
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def parse(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def composed(app: str, overrides: list[str]) -> dict[str, Any]:
    """The cell's config as its app composes it, resolved (plain containers)."""
    from omegaconf import OmegaConf


    out = OmegaConf.to_container(compose_config(app, overrides), resolve=True)
    assert isinstance(out, dict)
    return out


def length_overrides(app: str, options: Options, batch: int) -> list[str]:
    """One epoch of ``iters`` iterations at ``batch``, the first ``warmup`` untimed, one evaluation of
    ``eval_images`` images, wandb off, the cell's batch replaced when asked."""
    common = ["wandb.mode=disabled", *([f"data.batch_size={batch}"] if options.batch else [])]
    if app == "classify":
        return [*common, "scale.classify.epochs=1", f"train.max_steps_per_epoch={options.iters}",
                f"data.test_size={options.eval_images}", f"train.fps_warmup_iters={options.warmup}",
                "train.log_every=1"]  # fmt: skip
    return [*common, "++scale.detect.epochs=1", f"++data.train_size={options.iters * batch}",
            f"++data.test_size={options.eval_images}", f"++scale.detect.fps_warmup_iters={options.warmup}",
            "++scale.detect.log_interval=1", "++scale.detect.val_interval=1",
            "++scale.detect.checkpoint_interval=1"]  # fmt: skip


def device_overrides(cfg: dict[str, Any], device: str) -> list[str]:
    """The device named where the app has the key (``train.device``), and a partial or generated data set
    allowed where the app checks it (``data.allow_partial``): a rehearsal runs on either."""
    out = [f"train.device={device}"] if "device" in (cfg.get("train") or {}) else []
    return out + (["++data.allow_partial=true"] if "allow_partial" in (cfg.get("data") or {}) else [])


def data_overrides(cfg: dict[str, Any], options: Options, batch: int, standins: Path
                   ) -> tuple[list[str], list[str]]:  # fmt: skip
    """The user's data where its root exists, else the generated stand-in (overrides, notes)."""
    data = cfg["data"]
    root = REPO_ROOT / str(data.get("root", ""))  # the apps run in the repository root
    if root.exists() or data["name"] not in STANDINS:
        return [], ([] if root.exists() else [f"data root {root} is not there"])
    s = STANDINS[data["name"]]
    margin = batch if data.get("format") else 0  # detection: images without objects are left out of training
    train = max(s.min_images, options.iters * batch + margin)
    test = max(s.min_images, options.eval_images)
    overrides = [f"data={s.name}", f"data_root={standins.resolve()}", f"++data.{s.train_key}={train}",
                 f"++data.{s.test_key}={test}", *(f"++data.{k}={v}" for k, v in s.options)]  # fmt: skip
    return overrides, [f"generated {s.name} ({root} is not there)"]


def backbone_override(table: Table, cell: Cell, cfg: dict[str, Any], overrides: list[str], options: Options,
                      folder: Path, seed: int) -> tuple[list[str], str]:  # fmt: skip
    """A Mask R-CNN cell's backbone: given, exported from Table 5's run, or, without that run, a random
    ResNet-50 of the cell's method written to ``folder`` (the note says so)."""
    source = resolve(table, cell, "full", overrides, options.runs_root, seed)
    if source is None or source.kind in ("explicit", "scratch"):
        return [], ""
    if source.kind == "run":
        path, _ = ensure_exported(source)
        return [f"{CHECKPOINT_KEY}={path}"], f"backbone from {source.run_dir}"
    path = random_backbone(cfg["norm"], folder)
    return [f"{CHECKPOINT_KEY}={path}"], f"random backbone: no Table 5 run at {source.run_dir}"


def random_backbone(norm: dict[str, Any], folder: Path) -> Path:
    """mmdet's ResNet-50 of the method ``norm``, randomly initialized, saved as a backbone checkpoint."""
    import torch


    path = (folder / f"random_resnet50_{norm['method']}.pth").resolve()
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        state = mmdet_resnet50(dict(norm)).state_dict()
        torch.save({"state_dict": state, "meta": {"source": "random (a rehearsal)", "method": norm}}, path)
    return path


def from_record(cell: str, record: dict[str, Any], launch_error: str | None, kind: Kind, batch: int,
                images_per_seed: int) -> Rehearsed:  # fmt: skip
    """A cell's row from its run's record (or, without one, the launch's last error line)."""
    row = Rehearsed(cell, "ok", batch=batch, app=kind.app, model=kind.model, method=kind.method,
                    input_size=kind.size)  # fmt: skip
    history = record.get("history") or []
    row.train_loss = float(history[-1].get("train_loss", math.nan)) if history else math.nan
    row.images_per_s = float(record.get("train_fps", math.nan))
    row.seconds_per_iter = batch / row.images_per_s if row.images_per_s > 0 else math.nan
    row.peak_memory_mb = float(record.get("peak_memory_mb", math.nan))
    row.device = str(record.get("train_device") or "")
    row.timed_iters = int(record.get("train_fps_iters") or 0)
    row.device_hours = images_per_seed / row.images_per_s / 3600 if row.images_per_s > 0 else math.nan
    status = record.get("status")
    if status is None:  # the app stopped before its record (or never started): the launch's last error
        error = launch_error or "NoRecord: the launch wrote no metrics.json"
        row.status = error if error.partition(":")[0].isidentifier() else f"LaunchFailed: {error}"
    elif status != "finished":
        row.status = error_line(str(record.get("error") or status), status)
    elif not math.isfinite(row.train_loss):
        row.status = f"NonFiniteLoss: train_loss {row.train_loss}"
    elif not record.get("evaluated"):
        row.status = "NoEvaluation: the evaluation gave no metric"
    return row


def error_line(error: str, status: str) -> str:
    """``<class>: <last line>`` of a record's error (``invalid configuration: ...`` is a ConfigError; a
    failed run's bare message a RunFailed)."""
    lines = [ln.strip() for ln in error.splitlines() if ln.strip()] or [status]
    head, _, rest = lines[0].partition(":")
    if head == "invalid configuration" or (head.isidentifier() and rest):
        cls, lines[0] = ("ConfigError" if head == "invalid configuration" else head), rest.strip()
    else:
        cls = {"failed": "RunFailed"}.get(status, status)
    return f"{cls}: {lines[-1]}"[:300]


def failure(e: BaseException) -> str:
    lines = [ln for ln in str(e).splitlines() if ln.strip()] or [""]
    return f"{type(e).__name__}: {lines[-1].strip()}"[:300]


def mmcv_cuda_problem() -> str | None:
    """None if mmcv's compiled ops run on CUDA (an NMS), else why not."""
    try:
        import torch
        from mmcv.ops import nms

        boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]], device="cuda")
        nms(boxes, torch.ones(1, device="cuda"), 0.5)
    except Exception as e:  # noqa: BLE001 - any failure is the answer
        return failure(e)
    return None


def summary(row: Rehearsed) -> str:
    if not row.ok:
        return f"FAILED {row.status}" + (f" (run {row.run_dir})" if row.run_dir else "")
    text = (f"ok, {row.seconds_per_iter:.2f} s/iter ({rate(row.images_per_s)} images/s over "
            f"{row.timed_iters} iterations), peak {row.peak_memory_mb:,.0f} MB, loss {row.train_loss:.3g}, "
            f"{row.device}, {row.device_hours:,.1f} device-hours a seed")  # fmt: skip
    return text + (f"; {row.note}" if row.note else "")


# ------------------------------------------------------------------------------------------- the table


def write_table(table_name: str, rows: list[Rehearsed], out_root: str | Path, options: Options
                ) -> dict[str, Path]:  # fmt: skip
    """``<out>/rehearsal/<table>.md`` and ``.csv``; their paths."""
    folder = Path(out_root) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"md": folder / f"{table_name}.md", "csv": folder / f"{table_name}.csv"}
    names = COLUMNS + MORE_COLUMNS
    with open(paths["csv"], "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        for row in rows:
            values = asdict(row)
            writer.writerow([_cell_text(values[n]) for n in names])
    failed = [r for r in rows if not r.ok]
    lines = [
        f"# Rehearsal of {table_name} at full scale ({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"{options.iters} training iterations a cell ({options.warmup} warm-up, the rest timed) and one "
        f"evaluation over {options.eval_images} test images, launcher {options.launcher}. peak_memory_mb: "
        "CUDA's max allocated on a GPU, the training process' peak RSS on a CPU; device_hours: one seed of "
        "the full run's training at the measured speed. "
        + (f"**{len(failed)} of {len(rows)} cells failed.**" if failed else f"All {len(rows)} cells ok."),
        "",
        "| " + " | ".join(names) + " |",
        "|" + "---|" * len(names),
    ]
    for row in rows:
        values = asdict(row)
        lines.append("| " + " | ".join(_cell_text(values[n]).replace("|", "/") for n in names) + " |")
    paths["md"].write_text("\n".join(lines) + "\n")
    return paths


def _cell_text(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value)
