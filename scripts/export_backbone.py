"""Export a classification ResNet-50 run (Table 5) as an mmdet backbone checkpoint (Table 3's Mask R-CNN).

    python scripts/export_backbone.py RUN_DIR OUT.pth
    python -m pws.detect model=mask_rcnn_r50_fpn ... +model.backbone_checkpoint=OUT.pth

Prints how many tensors were mapped and names every weight of the run that has no place in mmdet's
ResNet-50 (the classifier; Table 5's LayerNorms at the input and output of the methods without a norm).
"""

from __future__ import annotations

import argparse
import sys

from pws.transfer.backbone import export_backbone


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a classification run directory (model=resnet50)")
    parser.add_argument("out", help="the checkpoint to write (.pth)")
    args = parser.parse_args(argv)
    try:
        exported = export_backbone(args.run_dir, args.out)
    except (OSError, ValueError) as e:
        print(f"export_backbone: error: {e}", file=sys.stderr)
        return 1
    print(f"{exported.path}: {exported.mapped} tensors of mmdet's ResNet-50 ({exported.method})")
    for key, why in exported.unmapped.items():
        print(f"  not exported: {key}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
