"""The classification app end to end against its bare training step, with each speed option.

For one network and method (default ``resnet_cifar`` + PWS at CIFAR's 32x32, batch 128), on the generated
CIFAR-10 set (the real file format and loader), the app (``pws.classify``: mmengine's Runner, the engine's
hooks, the data loader) trains one epoch of ``--steps`` steps per variant:

* ``app``: the defaults (the CPU data pipeline in worker processes);
* ``on_device``: ``data.on_device=true`` (the training set and its crop + flip on the device);
* ``fused``: ``train.fused_pws=true`` (one segmented standardization per step);
* ``compile``: ``train.compile=reduce-overhead`` (torch.compile of the train step with CUDA graphs);
* ``on_device+compile``.

Each run's ``train_fps`` (images/s of its timed steps: forward, backward, optimizer step and, on the device,
the augmentation; data loading excluded) and ``train_fps_median`` are printed next to the bare step of the
same network (forward, cross-entropy, backward, SGD on a fixed random batch: ``bench_classify.py``'s step),
so the table says what the engine and the data cost on top of the network's own work.

    python bench/bench_app.py                          # on the GPU (cuda if available)
    python bench/bench_app.py --device cpu --quick     # a dry run: a narrow net, a few steps
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from pws.engine.compose import compose_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_layers import training_step
from timing import configure_backend, load_average, round_robin, synchronizer

VARIANTS = {
    "app": [],
    "on_device": ["data.on_device=true"],
    "fused": ["train.fused_pws=true"],
    "compile": ["train.compile=reduce-overhead"],
    "on_device+compile": ["data.on_device=true", "train.compile=reduce-overhead"],
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet_cifar", help="plain_c or resnet_cifar (default: %(default)s)")
    p.add_argument("--norm", default="pws", help="the method (default: %(default)s)")
    p.add_argument("--batch", type=int, default=128, help="batch size (default: %(default)s)")
    p.add_argument("--steps", type=int, default=150, help="training steps per app run (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=5, help="untimed bare steps first (default: %(default)s)")
    p.add_argument("--variants", default=",".join(VARIANTS), help="default: %(default)s")
    p.add_argument("--workers", type=int, default=4, help="data-loader workers of the CPU pipeline")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="a dry run: a narrow net, 4 steps, batch 8")
    p.add_argument("--root", default=None, help="runs and generated data here (default: a temporary folder)")
    return p.parse_args(argv)


def app_run(name: str, base: list[str], root: Path) -> dict:
    """One app run of ``base`` + the variant's overrides; its record (``metrics.json``)."""
    from pws.classify import run

    overrides = [*base, *VARIANTS[name]]
    started = time.perf_counter()
    record = run(compose_config("classify", overrides), root / "runs" / name.replace("+", "_"), overrides)
    record["_wall"] = time.perf_counter() - started
    return record


def bare_step_fps(cfg, device: torch.device, batch: int, warmup: int, repeats: int) -> float:
    """images/s of the bare training step of the run's network (median step)."""
    from pws.classify.config import make_plan
    from pws.models.classifiers import build_classifier

    plan = make_plan(cfg, world_size=1)
    net = build_classifier(plan.model, plan.method, 10, **plan.model_kwargs).to(device)
    x = torch.randn(batch, 3, 32, 32, device=device)
    target = torch.randint(0, 10, (batch,), device=device)
    step = training_step(net, x, functools.partial(F.cross_entropy, target=target))
    timing = round_robin({"bare": step}, warmup, repeats, synchronizer(device))["bare"]
    return batch / statistics.median(timing.seconds)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.quick:
        args.steps, args.batch, args.warmup = 4, 8, 1
    root = Path(args.root or tempfile.mkdtemp(prefix="bench-app-"))
    base = [
        "scale=smoke" if args.quick else "scale=full",
        "data=synthetic_cifar", f"data.num_train={max(args.steps * args.batch, 10)}", "data.num_test=100",
        f"data_root={root / 'data'}", f"model={args.model}", f"norm={args.norm}",
        "scale.classify.epochs=1", f"train.max_steps_per_epoch={args.steps}", f"data.batch_size={args.batch}",
        f"train.device={args.device}", f"data.num_workers={args.workers}", "wandb.mode=disabled",
        f"train.log_every={max(1, args.steps // 3)}",
    ]  # fmt: skip
    if args.quick:
        base.append("model.width=0.125" if args.model == "plain_c" else "model.units_per_stage=1")
    print(f"# bench-app: python -m pws.classify end to end vs its bare step; {args.model} + {args.norm}, "
          f"32x32, batch {args.batch}, {args.steps} steps per run, device {device}")
    print(configure_backend(device))
    print(f"train_fps: images/s of each run's steps after the engine's 2 warm-up steps; train_fps_median: "
          f"its median step (robust to compilation's first steps); the bare step: median of "
          f"{max(3, args.steps // 2)} steps after {args.warmup} ({load_average()} at start)\n")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if device.type != "cuda":
        dropped = [v for v in variants if "compile" in v]
        variants = [v for v in variants if v not in dropped]
        if dropped:
            print(f"(skipped off a GPU, compiling takes minutes on a CPU: {', '.join(dropped)})")
    bare_cfg = compose_config("classify", base)
    bare = bare_step_fps(bare_cfg, device, args.batch, args.warmup, max(3, args.steps // 2))
    rows = ["| variant | train_fps (images/s) | train_fps_median | median vs bare step | status | wall (s) |",
            "|---|---|---|---|---|---|", f"| bare step | {bare:.1f} | - | 1.000x | - | - |"]
    for name in variants:
        try:
            record = app_run(name, base, root)
        except Exception as e:  # noqa: BLE001 - a variant that fails is reported, the others go on
            rows.append(f"| {name} | - | - | - | {type(e).__name__}: {str(e).splitlines()[0][:120]} | - |")
            continue
        fps, median = record.get("train_fps", float("nan")), record.get("train_fps_median", float("nan"))
        rows.append(f"| {name} | {fps:.1f} | {median:.1f} | {median / bare:.3f}x | {record['status']} | "
                    f"{record['_wall']:.0f} |")
    print("\n## results (the runs' logs above)")  # mmengine logs to stdout while the runs train
    print("\n".join(rows))
    print(f"\n({load_average()} at end; runs in {root})")


if __name__ == "__main__":
    main()
