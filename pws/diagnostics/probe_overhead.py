"""What the probe costs: ``python -m pws.diagnostics.probe_overhead [--device cpu|cuda] [--repeats 7]``.

Times training steps (forward, backward, SGD step) of two models without the probe, with the probe
recording weights and gradients only (``activations=False``), and with everything (the default),
interleaved, after a warm-up; prints the median per step and the overhead of each against no probe. On
CPU it reports process CPU time (user + system) as well as wall time: CPU time is steadier on a shared
machine. On CUDA the clock is read after synchronizing.

Models: the Figure 1/6 network (SSD-like VGG-16, 13 convs, 14.7M conv weights) at 160x160, batch 4, with
PWS; and the Figure 2 network (ConvPool-CNN-C, 9 convs) at 32x32, batch 64, with PWS.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable

import torch

from pws.diagnostics.probe import VarianceProbe
from pws.diagnostics.ssd_like import SSDLike
from pws.models.classifiers import build_classifier
from pws.nn import NormMethod

VARIANTS = ("no probe", "weights only", "full probe")


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _setups(
    device: torch.device,
) -> dict[str, tuple[torch.nn.Module, torch.nn.Module, Callable[[], torch.Tensor]]]:
    torch.manual_seed(0)
    ssd = SSDLike(NormMethod("pws", gamma=1e-3)).to(device)
    images = torch.randn(4, 3, 160, 160, device=device)
    targets = [{"boxes": torch.tensor([[0.1, 0.1, 0.4, 0.5]]), "labels": torch.tensor([5])}] * 4
    plain_c = build_classifier("plain_c", NormMethod("pws", gamma=1e-3), 10).to(device)
    x, t = torch.randn(64, 3, 32, 32, device=device), torch.randint(0, 10, (64,), device=device)
    return {
        "SSD VGG-16 160x160 b4": (ssd, ssd.backbone, lambda: ssd.loss(images, targets)),
        "plain_c 32x32 b64": (plain_c, plain_c, lambda: torch.nn.functional.cross_entropy(plain_c(x), t)),
    }


def measure(device: torch.device, repeats: int) -> list[dict[str, object]]:
    results = []
    for name, (model, probed, loss_fn) in _setups(device).items():
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
        wall: dict[str, list[float]] = {v: [] for v in VARIANTS}
        cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for rep in range(repeats + 1):  # the first round is the warm-up
            for variant in VARIANTS:
                probe = None
                if variant != "no probe":
                    probe = VarianceProbe(
                        probed, lr=1e-2, activations=variant == "full probe", keep_rows=False
                    )
                if device.type == "cuda":
                    torch.cuda.synchronize()
                w0, c0 = time.perf_counter(), _cpu_seconds()
                optimizer.zero_grad(set_to_none=True)
                loss_fn().backward()
                if probe is not None:
                    probe.step()
                optimizer.step()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                w1, c1 = time.perf_counter(), _cpu_seconds()
                if probe is not None:
                    probe.detach()
                if rep:
                    wall[variant].append(w1 - w0)
                    cpu[variant].append(c1 - c0)
        base_w, base_c = statistics.median(wall["no probe"]), statistics.median(cpu["no probe"])
        for variant in VARIANTS:
            mw, mc = statistics.median(wall[variant]), statistics.median(cpu[variant])
            cpu_overhead = mc / base_c - 1 if base_c > 0 else float("nan")
            results.append({
                "model": name, "variant": variant, "wall_s": mw, "cpu_s": mc,
                "wall_overhead": mw / base_w - 1, "cpu_overhead": cpu_overhead,
            })  # fmt: skip
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument(
        "--threads", type=int, default=0, help="torch intra-op threads on CPU (0: torch's default)"
    )
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"median of {args.repeats} steps after a warm-up")  # fmt: skip
    print("| model | probe | wall s/step | overhead | CPU s/step | overhead |\n|---|---|---:|---:|---:|---:|")
    for r in measure(device, args.repeats):
        print(f"| {r['model']} | {r['variant']} | {r['wall_s']:.3f} | {r['wall_overhead']:+.0%} | "
              f"{r['cpu_s']:.3f} | {r['cpu_overhead']:+.0%} |")  # fmt: skip


if __name__ == "__main__":
    main()
