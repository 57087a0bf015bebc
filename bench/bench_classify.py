"""`make bench` (with bench-layers): training speed of the classification networks of Tables 4 and 5 under
every normalization method — the "images/s per method" of the README's Classification section.

For each network at its paper setting (``plain_c`` and ``resnet_cifar`` at 32x32, batch 128, CIFAR-10's 10
classes; ``resnet50`` at 224x224, batch 64, ImageNet's 1000 classes) a training step (forward, cross-entropy,
backward, SGD with momentum 0.9 and weight decay except alpha) is timed for every method in turns
(round-robin) after a warm-up, on random tensors: the same network work as the real images, without the data
loader. The table gives the median step as images/s and its ratio to BN and to the plain conv ("none").
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_layers import table, training_step
from timing import configure_backend, load_average, round_robin, synchronizer

from pws.models.classifiers import build_classifier
from pws.nn import METHODS

# model -> (input size, batch, classes): the paper's settings (Table 4: CIFAR-10; Table 5: ImageNet)
SETTINGS = {"plain_c": (32, 128, 10), "resnet_cifar": (32, 128, 10), "resnet50": (224, 64, 1000)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(SETTINGS), help="networks to time (default: %(default)s)")
    p.add_argument("--methods", default=",".join(METHODS), help="methods to train (default: all)")
    p.add_argument("--batch", type=int, default=0, help="batch size for every network (0: the paper's)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per method first (default: 3)")
    p.add_argument("--repeats", type=int, default=10, help="timed steps per method (default: 10)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    print(f"# bench-classify: Tables 4 and 5 networks, training steps, device {device}")
    print(configure_backend(device))
    print(f"warm-up {args.warmup} steps, then {args.repeats} timed steps per method, round-robin\n")
    torch.manual_seed(0)
    for name in (m.strip() for m in args.models.split(",") if m.strip()):
        size, batch, classes = SETTINGS[name]
        batch = args.batch or batch
        x = torch.randn(batch, 3, size, size, device=device)
        target = torch.randint(0, classes, (batch,), device=device)
        print(f"## {name}, {size}x{size}, batch {batch} ({load_average()} at start)")
        loss = functools.partial(F.cross_entropy, target=target)
        steps = {m: training_step(build_classifier(name, m, classes).to(device), x, loss)
                 for m in methods}
        timings = round_robin(steps, args.warmup, args.repeats, synchronizer(device),
                              progress=lambda s: print(f"  {s}", file=sys.stderr, flush=True))
        print(table(timings, batch, ("bn", "none")))
        print(f"({load_average()} at end)\n")
        del steps


if __name__ == "__main__":
    main()
