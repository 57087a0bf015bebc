"""The metrics of the paper's tables: the run record's key (``metrics.json``, in %) of each, and the name
the app's mmengine evaluator reports it under (logged to wandb as ``val/<name>``; detection's as fractions).

One table read by the detection app (its record's metrics), the re-evaluation of a finished detection run
(:mod:`pws.detect.evaluate`) and the wandb dashboards (:mod:`pws.results.dashboard`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

CLASSIFICATION = {"top1_error": "top1_error", "top5_error": "top5_error", "test_loss": "test_loss"}
FMEASURE = {"f_measure": "fmeasure/f_measure"}  # Figure 3 (pws.detect.fmeasure), every detection run
VOC = {"mAP": "pascal_voc/mAP", **FMEASURE}  # VOC07 11-point mAP
COCO_BOX = {
    "bbox_mAP": "coco/bbox_mAP",
    "bbox_mAP_50": "coco/bbox_mAP_50",
    "bbox_mAP_75": "coco/bbox_mAP_75",
    **FMEASURE,
}
COCO_MASK = {"segm_mAP": "coco/segm_mAP", "segm_mAP_50": "coco/segm_mAP_50"}  # Mask R-CNN's
DETECTION = {**VOC, **COCO_BOX, **COCO_MASK}
BY_APP = {"pws.classify": CLASSIFICATION, "pws.detect": DETECTION}


def in_percent(evaluated: Mapping[str, float], names: Mapping[str, str]) -> dict[str, float]:
    """``{ours: 100 * evaluated[theirs]}`` for each of ``names`` (ours -> the evaluator's name, reported as a
    fraction); a metric the evaluator did not report, or reported as missing (< 0), is NaN (never 0)."""
    out = {}
    for ours, theirs in names.items():
        value = evaluated.get(theirs)
        out[ours] = 100.0 * float(value) if value is not None and value >= 0 else math.nan
    return out
