"""The f-measure of Figure 3 (pws.detect.fmeasure) on boxes whose answer is known by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from detection_stack import require_detection_stack

require_detection_stack()

from pws.detect.fmeasure import DetectionFMeasure, box_iou, f_measure, match_counts  # noqa: E402

GT = np.array([[0, 0, 10, 10], [20, 20, 40, 40]], float)
GT_LABELS = np.array([0, 1])


def test_box_iou_of_known_boxes() -> None:
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [10, 10, 20, 20]], float)
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 50 / 150, 0.0]])


def test_counts_follow_the_rule() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 40, 40], [20, 20, 40, 40], [50, 50, 60, 60]],
                     float)  # fmt: skip
    scores = np.array([0.9, 0.8, 0.7, 0.3, 0.95])
    labels = np.array([0, 0, 0, 1, 1])
    # kept (score >= 0.5): 0.95 (no box there: FP), 0.9 (matches gt 0: TP), 0.8 (gt 0 taken: FP),
    # 0.7 (right place, wrong class: FP); 0.3 dropped, so gt 1 is missed
    assert match_counts(boxes, scores, labels, GT, GT_LABELS) == (1, 4, 2)
    assert f_measure(1, 4, 2) == pytest.approx((0.25, 0.5, 2 * 0.25 * 0.5 / 0.75))
    # a lower score threshold takes the 0.3 box, which finds gt 1
    assert match_counts(boxes, scores, labels, GT, GT_LABELS, score_thr=0.2) == (2, 5, 2)
    # IoU 0.81 of the second box is not enough at 0.9
    assert match_counts(boxes[1:2], scores[1:2], labels[1:2], GT, GT_LABELS, iou_thr=0.9) == (0, 1, 2)


def test_a_perfect_detector_scores_1_and_ignored_boxes_count_for_nothing() -> None:
    assert f_measure(*match_counts(GT, np.ones(2), GT_LABELS, GT, GT_LABELS)) == (1.0, 1.0, 1.0)
    ignored = np.array([False, True])
    assert match_counts(GT, np.ones(2), GT_LABELS, GT, GT_LABELS, ignored) == (1, 1, 1)
    assert f_measure(0, 0, 0) == (0.0, 0.0, 0.0)


def test_the_metric_over_a_dataset() -> None:
    metric = DetectionFMeasure()
    boxes, labels = torch.tensor(GT), torch.tensor(GT_LABELS)
    perfect = {"pred_instances": {"bboxes": boxes, "scores": torch.ones(2), "labels": labels},
               "gt_instances": {"bboxes": boxes, "labels": labels},
               "ignored_instances": {"bboxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}}
    shuffled = {**perfect, "pred_instances": {**perfect["pred_instances"], "labels": torch.tensor([1, 0])}}
    metric.process({}, [perfect, shuffled])
    out = metric.compute_metrics(metric.results)
    assert out == pytest.approx({"f_measure": 0.5, "precision": 0.5, "recall": 0.5})
