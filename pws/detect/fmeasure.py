"""The f-measure of a detector (the paper's Figure 3), as an mmengine metric of every detection run.

The paper plots "the f-measure of different normalization methods during training (calculated by the
predicted object box and the ground truth object box)" without saying more. Ours, stated precisely:

* the detections of an image with score >= ``score_thr`` (0.5) count as predictions;
* each prediction, in descending score order, is matched to the unmatched ground-truth box of its class
  with the highest IoU, if that IoU >= ``iou_thr`` (0.5): a true positive; otherwise a false positive
  (VOC's matching rule; boxes marked difficult or crowd are ignored: neither a match nor a miss);
* over all images of the evaluation: precision P = TP / predictions, recall R = TP / ground-truth boxes,
  F = 2 P R / (P + R) (0 when P + R = 0).

It is evaluated after every epoch with the run's test set (the detection app adds it beside VOC's or COCO's
metric), so each history entry has ``f_measure`` (%): the curve of Figure 3.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (N, 4) with every box of ``b`` (M, 4), boxes as (x1, y1, x2, y2)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(axis=1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def match_counts(
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    gt_boxes: np.ndarray,
    gt_labels: np.ndarray,
    gt_ignore: np.ndarray | None = None,
    *,
    iou_thr: float = 0.5,
    score_thr: float = 0.5,
) -> tuple[int, int, int]:
    """(true positives, predictions, ground-truth boxes) of one image, by the rule of the module."""
    gt_ignore = np.zeros(len(gt_boxes), bool) if gt_ignore is None else np.asarray(gt_ignore, bool)
    keep = scores >= score_thr
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    order = np.argsort(-scores, kind="stable")
    boxes, labels = boxes[order], labels[order]
    iou = box_iou(boxes, gt_boxes) if len(boxes) and len(gt_boxes) else np.zeros((len(boxes), len(gt_boxes)))
    taken = np.zeros(len(gt_boxes), bool)
    tp = ignored = 0
    for i, label in enumerate(labels):
        candidates = np.flatnonzero((gt_labels == label) & ~taken & (iou[i] >= iou_thr))
        if not len(candidates):
            continue
        j = candidates[np.argmax(iou[i, candidates])]
        taken[j] = True
        if gt_ignore[j]:
            ignored += 1  # a detection of an ignored box: neither right nor wrong
        else:
            tp += 1
    return tp, len(boxes) - ignored, int((~gt_ignore).sum())


def f_measure(tp: int, predictions: int, ground_truth: int) -> tuple[float, float, float]:
    """(precision, recall, F) from the counts; each 0 where its denominator is 0."""
    precision = tp / predictions if predictions else 0.0
    recall = tp / ground_truth if ground_truth else 0.0
    f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f


@METRICS.register_module(name="DetectionFMeasure", force=True)
class DetectionFMeasure(BaseMetric):
    """mmengine metric: ``fmeasure/f_measure``, ``fmeasure/precision``, ``fmeasure/recall`` (fractions)."""

    default_prefix = "fmeasure"

    def __init__(self, iou_thr: float = 0.5, score_thr: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.iou_thr = iou_thr
        self.score_thr = score_thr

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            pred, gt = sample["pred_instances"], sample["gt_instances"]
            ignored = sample.get("ignored_instances", {})
            gt_boxes, gt_labels = _array(gt["bboxes"]), _array(gt["labels"])
            ign_boxes = _array(ignored["bboxes"]) if "bboxes" in ignored else np.zeros((0, 4))
            ign_labels = _array(ignored["labels"]) if "labels" in ignored else np.zeros(0, int)
            self.results.append(match_counts(
                _array(pred["bboxes"]), _array(pred["scores"]), _array(pred["labels"]),
                np.concatenate([gt_boxes.reshape(-1, 4), ign_boxes.reshape(-1, 4)]),
                np.concatenate([gt_labels, ign_labels]),
                np.r_[np.zeros(len(gt_labels), bool), np.ones(len(ign_labels), bool)],
                iou_thr=self.iou_thr, score_thr=self.score_thr,
            ))  # fmt: skip

    def compute_metrics(self, results: list[tuple[int, int, int]]) -> dict[str, float]:
        tp, predictions, ground_truth = (int(sum(r[k] for r in results)) for k in range(3))
        precision, recall, f = f_measure(tp, predictions, ground_truth)
        return {"f_measure": f, "precision": precision, "recall": recall}


def _array(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
