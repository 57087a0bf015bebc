"""PWS's standardization per layer against one fused standardization per network (``fuse_standardization``).

On the VGG-16 conv stack (13 conv3x3 + ReLU, 4 max-pools; 14.7M conv weights), side by side in one process:

* ``none``: plain conv; ``bn``: conv + BatchNorm2d;
* ``pws``: PWSConv2d, each layer standardizing its kernel (the per-layer path);
* ``pws fused``: the same network after ``fuse_standardization``: every kernel in one segmented op;
* ``timm``: timm's ``ScaledStdConv2d`` with ``gamma = sqrt(2)``, ``eps`` = PWS's gamma, ``gain`` = alpha,
  which computes the same kernel as PWS (``tests/test_fused.py`` checks it) with one ``F.batch_norm`` per
  layer (skipped if timm is not installed).

Three tables: (1) the standardization alone, forward + backward of the 13 kernels (no conv), with the number
of kernels it runs (CPU: leaf aten ops that compute, from the profiler; CUDA: kernels launched); (2) training
steps (forward + backward + SGD) at each size; (3) eval-mode forwards (the fused kernels are kept between
forwards until the weights change, so evaluation standardizes once). Steps are timed round-robin (see
``timing.py``); medians, ratios to the per-layer PWS and to BN, and the same ratios of the fastest steps.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_layers import inference_step, sizes, table, training_step
from timing import configure_backend, load_average, round_robin, synchronizer

from pws.engine.device import cpu_name
from pws.models.vgg import vgg16_features
from pws.nn import FusedStandardization, NormMethod, PWSConv2d, fuse_standardization
from pws.nn.fused import pws_layers

try:
    from timm.layers.std_conv import ScaledStdConv2d
except ImportError:  # timm is optional (dev extra)
    ScaledStdConv2d = None

CANDIDATES = ("none", "bn", "pws", "pws fused", "timm")
NO_KERNEL = {
    f"aten::{name}"
    for name in (
        "view", "as_strided", "_reshape_alias", "reshape", "unsqueeze", "squeeze", "expand", "split",
        "split_with_sizes", "narrow", "slice", "select", "t", "transpose", "permute", "detach", "alias",
        "empty", "empty_strided", "empty_like", "resize_", "result_type", "to", "lift_fresh", "_unsafe_view",
        "contiguous", "flatten", "unflatten",
    )
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="32x64,320x8", help="comma-separated SIZExBATCH (default: %(default)s)")
    p.add_argument("--candidates", default=",".join(CANDIDATES), help="default: %(default)s")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per candidate first (default: 1)")
    p.add_argument("--repeats", type=int, default=3, help="timed training steps per candidate (default: 3)")
    p.add_argument("--inference-repeats", type=int, default=3, help="timed eval forwards (default: 3)")
    p.add_argument("--std-repeats", type=int, default=9,
                   help="timed standardization-only steps per candidate (default: 9)")
    p.add_argument("--gamma", type=float, default=1e-3, help="PWS gamma (timm's eps) (default: 1e-3)")
    p.add_argument("--no-training", action="store_true")
    p.add_argument("--no-inference", action="store_true")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="also time each training candidate captured into one CUDA graph per step (GPU only)")
    p.add_argument("--quick", action="store_true",
                   help="a dry run: 32x32 batch 2, one step of each kind (checks the script only)")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.warmup, args.repeats, args.inference_repeats, args.std_repeats = "32x2", 1, 1, 1, 1
    return args


def timm_from_pws(model: nn.Module) -> nn.Module:
    """``model`` with every PWSConv2d replaced by timm's ScaledStdConv2d computing the same kernel."""
    for name, layer in list(model.named_modules()):
        if not isinstance(layer, PWSConv2d):
            continue
        conv = ScaledStdConv2d(
            layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
            layer.dilation, layer.groups, layer.bias is not None, gamma=math.sqrt(2.0) if layer.fan_in_scale
            else math.sqrt(layer.fan_in), eps=layer.standardization_gamma(),
        ).to(layer.weight.device)
        with torch.no_grad():
            conv.weight.copy_(layer.weight)
            conv.gain.copy_(layer.alpha.view(-1, 1, 1, 1))
            if layer.bias is not None:
                conv.bias.copy_(layer.bias)
        model.set_submodule(name, conv)
    return model


def build(candidate: str, device: torch.device, gamma: float) -> nn.Module:
    if candidate in ("none", "bn"):
        return vgg16_features(NormMethod(candidate)).to(device)
    model = vgg16_features(NormMethod("pws", gamma=gamma)).to(device)
    if candidate == "pws fused":
        return fuse_standardization(model)
    if candidate == "timm":
        return timm_from_pws(model)
    return model


def timm_kernel(conv: nn.Conv2d) -> torch.Tensor:
    """The kernel timm's ScaledStdConv2d computes in its forward (its own expression)."""
    return F.batch_norm(
        conv.weight.reshape(1, conv.out_channels, -1), None, None, weight=(conv.gain * conv.scale).view(-1),
        training=True, momentum=0.0, eps=conv.eps,
    ).reshape_as(conv.weight)


def standardization_step(candidate: str, model: nn.Module) -> Callable[[], None]:
    """Forward + backward of every kernel of ``model`` alone (no conv), with random upstream gradients."""
    if candidate == "timm":
        layers = [m for m in model.modules() if isinstance(m, ScaledStdConv2d)]

        def kernels() -> list[torch.Tensor]:
            return [timm_kernel(m) for m in layers]
    elif candidate == "pws fused":
        fusion = FusedStandardization(pws_layers(model))
        layers = fusion.layers
        kernels = fusion.kernels
    else:
        layers = pws_layers(model)

        def kernels() -> list[torch.Tensor]:
            return [PWSConv2d.effective_weight(m) for m in layers]
    grads = [torch.randn_like(m.weight) for m in layers]

    def step() -> None:
        model.zero_grad(set_to_none=True)
        torch.autograd.backward(kernels(), grads)

    return step


def kernel_count(step: Callable[[], None], device: torch.device) -> int:
    """Kernels one call of ``step`` runs: CUDA kernels launched, or on the CPU the leaf aten ops of the
    profile that compute (views and allocations left out)."""
    step()
    cuda = device.type == "cuda"
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        step()
        if cuda:
            torch.cuda.synchronize(device)
    if cuda:
        return sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)
    ops = Counter(e.name for e in prof.events()
                  if not e.cpu_children and e.name.startswith("aten::") and e.name not in NO_KERNEL)
    return sum(ops.values())


def graphed(step: Callable[[], None], device: torch.device) -> Callable[[], None]:
    """``step`` (a whole training step: zero_grad, forward, backward, optimizer step) captured once into a
    CUDA graph after 3 warm-up calls on a side stream; the returned callable replays it (no launch overhead
    per kernel, no Python: what ``torch.compile(mode="reduce-overhead")`` gives a compiled step)."""
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        for _ in range(3):
            step()
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    candidates = [c.strip() for c in args.candidates.split(",") if c.strip()]
    if "timm" in candidates and ScaledStdConv2d is None:
        print("(timm is not installed: its column is skipped; `pip install timm`)")
        candidates.remove("timm")
    sync = synchronizer(device)
    progress = lambda s: print(f"  {s}", file=sys.stderr, flush=True)  # noqa: E731
    print("# bench-fused: PWS per layer vs one fused standardization per network; VGG-16 conv stack "
          f"(13 conv3x3 + ReLU, 4 max-pools, 14.7M conv weights), device {device}")
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    print(f"{machine}, {__import__('os').cpu_count()} cores; {configure_backend(device)}")
    print(f"PWS gamma {args.gamma} (timm: gamma sqrt(2), eps {args.gamma}); warm-up {args.warmup}, then "
          f"{args.repeats} training / {args.inference_repeats} inference / {args.std_repeats} "
          "standardization steps per candidate, round-robin; wall clock\n")
    torch.manual_seed(0)

    std_candidates = [c for c in candidates if c in ("pws", "pws fused", "timm")]
    if std_candidates:
        print(f"## the standardization alone: forward + backward of the 13 kernels ({load_average()})")
        models = {c: build(c, device, args.gamma) for c in std_candidates}
        steps = {c: standardization_step(c, models[c]) for c in std_candidates}
        counts = {c: kernel_count(steps[c], device) for c in std_candidates}
        timings = round_robin(steps, 2, args.std_repeats, sync)
        base = timings.get("pws")
        print("| candidate | kernels per step | median (ms) | fastest (ms) | vs pws (median) "
              "| vs pws (fastest) | spread |\n|---|---|---|---|---|---|---|")
        for c, t in timings.items():
            ratio = f"{base.median / t.median:.3f}x" if base else "-"
            ratio_fast = f"{base.fastest / t.fastest:.3f}x" if base else "-"
            print(f"| {c} | {counts[c]} | {t.median * 1e3:.1f} | {t.fastest * 1e3:.1f} | {ratio} | "
                  f"{ratio_fast} | {t.spread:.0%} |")
        print()
        del models, steps

    for size, batch in sizes(args.sizes):
        x = torch.randn(batch, 3, size, size, device=device)
        if not args.no_training:
            print(f"## training, {size}x{size}, batch {batch} ({load_average()} at start)")
            models = {c: build(c, device, args.gamma) for c in candidates}
            steps = {c: training_step(m, x) for c, m in models.items()}
            if args.cuda_graphs and device.type == "cuda":
                for c in candidates:
                    try:
                        step = training_step(build(c, device, args.gamma), x)
                        steps[f"{c} +graphs"] = graphed(step, device)
                    except Exception as e:  # noqa: BLE001 - a path that cannot be captured is reported
                        print(f"({c}: not capturable into a CUDA graph: {type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200]})")
            elif args.cuda_graphs:
                print("(--cuda-graphs: CUDA only; not timed on this device)")
            timings = round_robin(steps, args.warmup, args.repeats, sync, progress=progress)
            print(table(timings, batch, ("pws", "bn")))
            print(f"({load_average()} at end)\n")
            del models, steps
        if not args.no_inference:
            print(f"## inference (eval mode), {size}x{size}, batch {batch} ({load_average()} at start)")
            models = {c: build(c, device, args.gamma) for c in candidates if c != "bn"}
            steps = {c: inference_step(m, x) for c, m in models.items()}
            timings = round_robin(steps, args.warmup, args.inference_repeats, sync, progress=progress)
            print(table(timings, batch, ("pws", "none")))
            print(f"({load_average()} at end)\n")
            del models, steps


if __name__ == "__main__":
    main()
