"""`python bench/bench_ops.py [--device cuda]`: mmcv's compiled detection ops against torchvision's.

The detectors call three compiled ops: ``nms`` and ``batched_nms`` (SSD's and the RPN's box filtering) and
``roi_align`` (Mask R-CNN's RoI heads). mmcv 2.1.0 ships them only as C++/CUDA code built for one torch and
CUDA version (``make install`` builds it; a CPU-only build fails on a GPU). torchvision ships the same three
ops, compiled for the installed torch, on the CPU and on CUDA. This script weighs replacing mmcv's ops by
torchvision's: on the same inputs (boxes and features of the detectors' sizes) it checks that the outputs
agree (the kept indices; RoIAlign's largest difference) and times both, interleaved (bench/timing.py), with
the median per call and the ratio torchvision / mmcv.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision.ops as tv

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import configure_backend, load_average, round_robin, synchronizer


def boxes_and_scores(n: int, classes: int, size: float, generator: torch.Generator,
                     device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """``n`` random boxes (x1, y1, x2, y2) inside a ``size`` square, their scores and class ids."""
    xy = torch.rand(n, 2, generator=generator) * size * 0.8
    wh = torch.rand(n, 2, generator=generator) * size * 0.2 + 1.0
    boxes = torch.cat([xy, xy + wh], dim=1)
    scores = torch.rand(n, generator=generator)
    idxs = torch.randint(0, classes, (n,), generator=generator)
    return boxes.to(device), scores.to(device), idxs.to(device)


def cases(device: torch.device) -> dict[str, tuple[Callable[[], object], Callable[[], object], str]]:
    """Per op: (mmcv's call, torchvision's call, how far their outputs are apart)."""
    import mmcv.ops as mm

    g = torch.Generator().manual_seed(0)
    # SSD320 on VOC: 8,732 prior boxes x 20 classes before its top-k; Mask R-CNN's RPN keeps 1,000 per level
    boxes, scores, idxs = boxes_and_scores(8732, 21, 320.0, g, device)
    iou = 0.45
    keep_mm = mm.nms(boxes, scores, iou)[1]
    keep_tv = tv.nms(boxes, scores, iou)
    same = torch.equal(keep_mm.sort()[0], keep_tv.sort()[0])
    nms_gap = "same kept boxes" if same else "DIFFERENT kept boxes"
    cfg = {"type": "nms", "iou_threshold": iou}
    bkeep_mm = mm.batched_nms(boxes, scores, idxs, cfg, class_agnostic=False)[1]
    bkeep_tv = tv.batched_nms(boxes, scores, idxs, iou)
    same = torch.equal(bkeep_mm.sort()[0], bkeep_tv.sort()[0])
    batched_gap = "same kept boxes" if same else "DIFFERENT kept boxes"
    # Mask R-CNN's mask head: 512 RoIs on the stride-4 FPN level of a 1333x800 image, 14x14, aligned
    features = torch.randn(1, 256, 200, 334, generator=g).to(device)
    rois_xyxy = boxes_and_scores(512, 1, 800.0, g, device)[0]
    rois = torch.cat([torch.zeros(512, 1, device=device), rois_xyxy], dim=1)
    align = dict(output_size=(14, 14), spatial_scale=0.25, sampling_ratio=0)
    def mmcv_align() -> torch.Tensor:
        return mm.roi_align(features, rois, align["output_size"], align["spatial_scale"],
                            align["sampling_ratio"], "avg", True)  # fmt: skip

    def tv_align() -> torch.Tensor:
        return tv.roi_align(features, rois, aligned=True, **align)

    out_mm, out_tv = mmcv_align(), tv_align()
    align_gap = f"max |difference| {float((out_mm - out_tv).abs().max()):.2e}"
    nms = (lambda: mm.nms(boxes, scores, iou), lambda: tv.nms(boxes, scores, iou), nms_gap)
    return {
        "nms (8,732 boxes)": nms,
        "batched_nms (21 classes)": (
            lambda: mm.batched_nms(boxes, scores, idxs, cfg, class_agnostic=False),
            lambda: tv.batched_nms(boxes, scores, idxs, iou),
            batched_gap,
        ),
        "roi_align (512 RoIs, 14x14)": (mmcv_align, tv_align, align_gap),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=15)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    print(configure_backend(device), "|", load_average())
    print(f"{'op':<30} {'mmcv ms':>9} {'torchvision ms':>15} {'tv / mmcv':>10}  outputs")
    for name, (mmcv_call, tv_call, gap) in cases(device).items():
        t = round_robin({"mmcv": mmcv_call, "torchvision": tv_call}, args.warmup, args.repeats,
                        synchronizer(device))  # fmt: skip
        a, b = t["mmcv"].median * 1e3, t["torchvision"].median * 1e3
        print(f"{name:<30} {a:>9.2f} {b:>15.2f} {b / a:>10.2f}  {gap}")


if __name__ == "__main__":
    main()
