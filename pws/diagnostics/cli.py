"""``python -m pws.diagnostics figure1|figure2|figure6 --scale smoke|full``: reproduce Figures 1, 2 and 6.

Each writes ``<out>/<scale>/figureN.csv`` and ``figureN.png`` (``out`` = ``results``). Figures 1 and 6 come
from one measurement (``figure1_steps.csv``, with its settings in ``figure1_6.json``); the second of the two
reuses it when the settings match, ``--force`` measures again. Figure 2 is one classification run of the
engine per gamma, in ``<out>/<scale>/figure2_runs/gamma<g>/`` (settings in ``figure2.json``): a run that
finished with the same settings is reused, an interrupted one resumes, ``--force`` trains again.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from pws.data import DataMissingError
from pws.diagnostics import figures
from pws.diagnostics.measurements import (
    FIG2_RUNS,
    METHOD_LABELS,
    SCALES_FIG2,
    SCALES_FIG16,
    BackboneConfig,
    GammaConfig,
    measure_backbones,
    train_gammas,
)
from pws.diagnostics.probe import ROW_COLUMNS, write_rows
from pws.engine.errors import ConfigError, Preempted, RunFailed

FIGURES = ("figure1", "figure2", "figure6")
META_FILE = "figure1_6.json"
STEPS_FILE = "figure1_steps.csv"


def backbone_config(scale: str, **overrides: Any) -> BackboneConfig:
    """The Figure 1/6 settings of ``scale`` with ``overrides`` (None values ignored)."""
    if scale not in SCALES_FIG16:
        raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES_FIG16)}")
    cfg = BackboneConfig(scale=scale, **SCALES_FIG16[scale])
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


def gamma_config(scale: str, **overrides: Any) -> GammaConfig:
    """The Figure 2 settings of ``scale`` with ``overrides`` (None values ignored)."""
    if scale not in SCALES_FIG2:
        raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES_FIG2)}")
    cfg = GammaConfig(scale=scale, **SCALES_FIG2[scale])
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


def _scale_note(scale: str) -> str:
    return (
        "SMOKE scale: a check of the pipeline, not the paper's setting" if scale == "smoke" else "full scale"
    )


def backbone_steps(
    cfg: BackboneConfig, out_dir: Path, force: bool = False, log: Any = print
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The per-step probe rows of the Figure 1/6 measurement: reused from ``out_dir`` if settings match."""
    meta_path, steps_path = out_dir / META_FILE, out_dir / STEPS_FILE
    if not force and meta_path.exists() and steps_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("config") == cfg.key():
            log(f"reusing the measurement in {steps_path} (same settings; --force measures again)")
            info = meta["info"]
            info["input_from"] = {int(k): v for k, v in info.get("input_from", {}).items()}
            return figures.read_csv(steps_path), info
    rows, info = measure_backbones(cfg, log=log)
    write_rows(steps_path, rows, columns=("method", "images", *ROW_COLUMNS))
    meta_path.write_text(json.dumps({"config": cfg.key(), "info": info}, indent=1, default=str) + "\n")
    return rows, info


def run_figure16(
    which: str, cfg: BackboneConfig, out: str | Path = "results", force: bool = False, log: Any = print
) -> dict[str, Path]:
    """Measure (or reuse) and write ``figure1`` or ``figure6`` CSV and PNG; returns their paths."""
    out_dir = Path(out) / cfg.scale
    out_dir.mkdir(parents=True, exist_ok=True)
    steps, info = backbone_steps(cfg, out_dir, force=force, log=log)
    layers = figures.aggregate_layers(steps, info.get("input_from"))
    data = "generated VOC images" if cfg.data == "synthetic_voc" else "VOC07+12 trainval"
    where = (
        f"{data}: {info['images']} images at {cfg.image_size}x{cfg.image_size}, batch {cfg.batch_size}; "
        f"LR {cfg.lr:g}, PWS gamma {cfg.pws_gamma:g}; "
        "weights at initialization (update computed, not applied)"
    )
    methods = ", ".join(METHOD_LABELS[m] for m in cfg.methods)
    if which == "figure1":
        csv_path = write_rows(out_dir / "figure1.csv", layers, columns=figures.FIG1_COLUMNS)
        png = figures.plot_figure1(
            layers,
            out_dir / "figure1.png",
            f"Figure 1: SSD VGG-16 backbone ({methods}) - {where}\n{_scale_note(cfg.scale)}",
        )
    elif which == "figure6":
        csv_path = write_rows(out_dir / "figure6.csv", layers, columns=figures.FIG6_COLUMNS)
        png = figures.plot_figure6(
            layers,
            out_dir / "figure6.png",
            f"Figure 6: inputs X_l of each conv layer, SSD VGG-16 backbone ({methods})\n{where}; "
            f"{_scale_note(cfg.scale)}",
        )
    else:
        raise ValueError(f"run_figure16 draws figure1 or figure6, not {which!r}")
    log(f"wrote {csv_path} and {png}")
    return {"csv": csv_path, "png": png}


def run_figure2(cfg: GammaConfig, out: str | Path = "results", log: Any = print) -> dict[str, Path]:
    """One classification run per gamma (``<out>/<scale>/figure2_runs/``), then ``figure2`` CSV and PNG;
    returns their paths."""
    out_dir = Path(out) / cfg.scale
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, info = train_gammas(cfg, out_dir / FIG2_RUNS, log=log)
    csv_path = write_rows(out_dir / "figure2.csv", rows, columns=figures.FIG2_COLUMNS)
    (out_dir / "figure2.json").write_text(json.dumps({"config": cfg.__dict__, "info": info}, indent=1,
                                                     default=str) + "\n")  # fmt: skip
    data = {"digits": "scikit-learn digits (32x32)", "cifar10": "CIFAR-10"}.get(cfg.data, cfg.data)
    milestones = info.get("milestones")
    steps = (
        f"{info['steps']} steps ({info['epochs']} epochs of {info['steps_per_epoch']})"
        if info.get("steps_per_epoch")
        else f"{info.get('epochs')} epochs"
    )
    title = (
        f"Figure 2: PWS {cfg.model} on {data}, layer {cfg.layer} ({info.get('layer_name')}); "
        f"LR {cfg.lr:g}"
        + (f" (x0.1 after epochs {', '.join(map(str, milestones))})" if milestones else "")
        + f", batch {cfg.batch_size}, weight decay {cfg.weight_decay:g}, momentum {cfg.momentum:g}, {steps}"
        f"\n{_scale_note(cfg.scale)}"
    )
    png = figures.plot_figure2(rows, out_dir / "figure2.png", title)
    log(f"wrote {csv_path} and {png}")
    return {"csv": csv_path, "png": png}


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(","))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pws.diagnostics", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("figure", choices=FIGURES)
    p.add_argument("--scale", choices=("smoke", "full"), default="smoke")
    p.add_argument("--out", default="results", help="results root (writes <out>/<scale>/figureN.*)")
    p.add_argument("--data-root", help="figure1/6: VOCdevkit (full) or where the generated set goes (smoke); "
                   "figure2: data root")  # fmt: skip
    p.add_argument("--device", help="cpu, cuda, cuda:1 or auto")
    p.add_argument("--seed", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument(
        "--force",
        action="store_true",
        help="figure1/6: measure again even if a matching one exists; figure2: train every gamma again",
    )
    g = p.add_argument_group("figure1 / figure6")
    g.add_argument(
        "--max-images", type=int, help="measure on the first N trainval images (default: smoke 16, full all)"
    )
    g.add_argument("--image-size", type=int)
    g.add_argument("--input-std", type=_floats, help="per-channel divisor of (pixel - mean), e.g. 1,1,1")
    g.add_argument("--methods", type=lambda s: tuple(s.split(",")), help="subset of none,bn,pws")
    g = p.add_argument_group("figure2")
    g.add_argument("--gammas", type=_floats, help="comma-separated gamma values")
    g.add_argument(
        "--epochs", type=int, help="scale.classify.epochs: the schedule shortened to N epochs (smoke: 4)"
    )
    g.add_argument(
        "--max-steps-per-epoch", type=int, help="train.max_steps_per_epoch: N batches per epoch (smoke: 25)"
    )
    g.add_argument("--width", type=float, help="plain_c channel multiplier (1.0 = the paper's net)")
    g.add_argument("--data", help="figure2 data set: digits, cifar10, synthetic_cifar")
    g.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="a further override of the runs (repeatable), e.g. train.eval_every=4")  # fmt: skip
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    try:
        if args.figure == "figure2":
            cfg = gamma_config(
                args.scale,
                data_root=args.data_root,
                device=args.device,
                seed=args.seed,
                batch_size=args.batch_size,
                gammas=args.gammas,
                epochs=args.epochs,
                max_steps_per_epoch=args.max_steps_per_epoch,
                width=args.width,
                data=args.data,
                overrides=tuple(args.override) or None,
                force=args.force or None,
            )
            run_figure2(cfg, args.out)
        else:
            cfg16 = backbone_config(
                args.scale,
                data_root=args.data_root,
                device=args.device,
                seed=args.seed,
                batch_size=args.batch_size,
                max_images=args.max_images,
                image_size=args.image_size,
                input_std=args.input_std,
                methods=args.methods,
            )
            run_figure16(args.figure, cfg16, args.out, force=args.force)
    except DataMissingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (ConfigError, RunFailed) as err:  # a Figure 2 run: an invalid override, missing data, ...
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except Preempted as err:  # the checkpoint is saved: the same command resumes
        print(f"pws.diagnostics: {err}", file=sys.stderr)
        return err.exit_code
    return 0


__all__ = ["backbone_config", "gamma_config", "main", "run_figure2", "run_figure16"]
