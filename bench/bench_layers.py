"""`make bench-layers`: training and inference speed of the VGG-16 conv stack under every normalization method
(the project's ``pws.models.vgg.vgg16_features``).

Training step = forward + backward + SGD step (momentum 0.9, weight decay 5e-4 except alpha), timed for
every method in turns (round-robin) after a warm-up; the table gives the median step as images/s with its
ratio to BN and to the plain conv ("none"), and the same ratios from the fastest step of each method.
Inference compares the plain conv, eager PWS and PWS folded into plain convs (``pws.nn.fold``), in eval mode.

Sizes: CIFAR's 32x32 at batch 64, and a detection size, 128x128 at batch 8 by default: batch 8 is the
paper's Table 1 setting (SSD, one GPU); 128 px instead of SSD's 320 px keeps a step near 3 s on two CPU
cores (320 px is 6x that), while the per-step activation volume is already twice CIFAR's and the cost of
standardizing the weights (the same 14.7M weights at any size) is a smaller share than at 32 px. Pass
``--sizes 320x8`` for SSD's input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import Timing, configure_backend, load_average, round_robin, synchronizer

from pws.models.vgg import vgg16_features
from pws.nn import METHODS, NormMethod, PWSConv2d, fold
from pws.optim import param_groups


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="32x64,128x8", help="comma-separated SIZExBATCH (default: %(default)s)")
    p.add_argument("--methods", default=",".join(METHODS), help="methods to train (default: all)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per method first (default: 2)")
    p.add_argument("--repeats", type=int, default=7, help="timed steps per method (default: 7)")
    p.add_argument("--inference-repeats", type=int, default=15, help="timed eval forwards (default: 15)")
    p.add_argument("--no-training", action="store_true", help="skip the training table")
    p.add_argument("--no-inference", action="store_true", help="skip the inference table")
    p.add_argument("--compile", action="store_true",
                   help="also time each method's network under torch.compile (default mode), in the "
                        "same round-robin as the eager ones (rows '<method>+compile')")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall clock (default), or the process's CPU time (use with --threads 1 on a loaded "
                        "machine: it leaves out the time spent waiting for a core)")
    return p.parse_args(argv)


def sizes(spec: str) -> list[tuple[int, int]]:
    out = []
    for item in spec.split(","):
        size, batch = item.lower().split("x")
        out.append((int(size), int(batch)))
    return out


def model_for(method: str, device: torch.device) -> torch.nn.Module:
    return vgg16_features(NormMethod(method)).to(device)


def training_step(
    model: torch.nn.Module,
    x: torch.Tensor,
    loss: Callable[[torch.Tensor], torch.Tensor] = lambda out: out.square().mean(),
):
    """A closure doing one SGD training step of ``model`` on the fixed batch ``x``, minimizing ``loss``."""
    model.train()
    opt = torch.optim.SGD(param_groups(model, weight_decay=5e-4), lr=1e-4, momentum=0.9)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss(model(x)).backward()
        opt.step()

    return step


def inference_step(model: torch.nn.Module, x: torch.Tensor):
    model.eval()

    def step() -> None:
        with torch.inference_mode():
            model(x)

    return step


def standardization_step(model: torch.nn.Module):
    """Forward + backward of the weight standardization of every PWS layer alone (no conv)."""
    layers = [m for m in model.modules() if isinstance(m, PWSConv2d)]
    grads = [torch.randn_like(m.weight) for m in layers]

    def step() -> None:
        for m in layers:
            m.weight.grad = m.alpha.grad = None
        torch.autograd.backward([m.effective_weight() for m in layers], grads)

    return step


def bn_layers_step(model: torch.nn.Module, x: torch.Tensor):
    """Forward + backward of every BatchNorm2d of ``model`` alone, on random activations of its shapes."""
    layers = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    shapes: dict[torch.nn.Module, torch.Size] = {}

    def record(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        shapes[module] = args[0].shape

    hooks = [m.register_forward_pre_hook(record) for m in layers]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    inputs = [torch.randn(shapes[m], device=x.device, requires_grad=True) for m in layers]
    grads = [torch.randn(shapes[m], device=x.device) for m in layers]

    def step() -> None:
        for t in inputs:
            t.grad = None
        torch.autograd.backward([m(t) for m, t in zip(layers, inputs, strict=True)], grads)

    return step


def table(timings: dict[str, Timing], batch: int, baselines: tuple[str, ...]) -> str:
    """Markdown rows: median step, images/s, ratios (median, then fastest step) to each baseline present."""
    present = [b for b in baselines if b in timings]
    head = ["method", "median step (ms)", "images/s"]
    head += [f"vs {b} (median)" for b in present] + [f"vs {b} (fastest)" for b in present] + ["spread"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, t in timings.items():
        cells = [name, f"{t.median * 1e3:.0f}", f"{batch / t.median:.1f}"]
        cells += [f"{timings[b].median / t.median:.3f}x" for b in present]
        cells += [f"{timings[b].fastest / t.fastest:.3f}x" for b in present]
        cells += [f"{t.spread:.0%}"]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu" and (device.type != "cpu" or torch.get_num_threads() != 1):
        raise SystemExit("--clock cpu measures one CPU thread's work: use it with --threads 1 on the CPU")
    sync = synchronizer(device)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    print(f"# bench-layers: VGG-16 conv stack (13 conv3x3 + norm + ReLU, 4 max-pools), device {device}")
    print(configure_backend(device))
    print(f"warm-up {args.warmup} steps, then {args.repeats} timed steps per method, round-robin; "
          f"{'wall-clock' if args.clock == 'wall' else 'CPU'} time\n")
    torch.manual_seed(0)
    for size, batch in sizes(args.sizes):
        x = torch.randn(batch, 3, size, size, device=device)
        if not args.no_training:
            print(f"## training, {size}x{size}, batch {batch} ({load_average()} at start)")
            models = {m: model_for(m, device) for m in methods}
            if args.compile:
                models |= {f"{m}+compile": torch.compile(model_for(m, device)) for m in methods}
            steps = {name: training_step(model, x) for name, model in models.items()}
            timings = round_robin(steps, args.warmup, args.repeats, sync, clock=args.clock,
                                  progress=lambda s: print(f"  {s}", file=sys.stderr, flush=True))
            print(table(timings, batch, ("bn", "none")))
            if {"pws", "bn", "none"} <= set(models):
                components = round_robin(
                    {"pws": standardization_step(models["pws"]), "bn": bn_layers_step(models["bn"], x)},
                    1, 3 * args.repeats, sync, clock=args.clock,
                )
                plain = timings["none"].median
                share = {k: t.median / plain for k, t in components.items()}
                print("\nWhat each method adds to the plain-conv step, timed alone (forward + backward, "
                      "all 13 layers, median / fastest):")
                for key, what in (("pws", "PWS weight standardization"), ("bn", "BN on the activations")):
                    t = components[key]
                    print(f"- {what}: {t.median * 1e3:.1f} / {t.fastest * 1e3:.1f} ms "
                          f"= {share[key]:.1%} of the median plain step")
                print(f"- so, if nothing else differed: PWS/none ~ {1 / (1 + share['pws']):.3f}x and "
                      f"PWS/BN ~ {(1 + share['bn']) / (1 + share['pws']):.3f}x; a layer doing a plain conv "
                      f"and more cannot beat none/BN ~ {1 + share['bn']:.3f}x")
            print(f"({load_average()} at end)\n")
            del models, steps
        if not args.no_inference:
            print(f"## inference (eval mode), {size}x{size}, batch {batch} ({load_average()} at start)")
            pws = model_for("pws", device)
            with torch.no_grad():  # a trained-looking PWS: alpha and beta away from their init
                for module in pws.modules():
                    if hasattr(module, "alpha"):
                        module.alpha.uniform_(0.5, 1.5)
                        module.bias.normal_(0, 0.1)
            candidates = {"conv (none)": model_for("none", device), "pws eager": pws, "pws folded": fold(pws)}
            steps = {name: inference_step(m, x) for name, m in candidates.items()}
            timings = round_robin(steps, args.warmup, args.inference_repeats, sync, clock=args.clock)
            print(table(timings, batch, ("conv (none)",)))
            print(f"({load_average()} at end)\n")
            del candidates, steps


if __name__ == "__main__":
    main()
