"""Evaluate a finished detection run again, on its own test set or on another one in the same layout.

``evaluate_run(run_dir, data_root=None)`` builds mmengine's Runner from the config the run dumped
(``<run_dir>/<timestamp>.py``: the model's file in ``configs/mmdet/`` with the run's values, see
:func:`pws.detect.config.build_config`), loads the run's newest checkpoint and runs mmengine's test loop
with the run's evaluator (VOC07 11-point VOCMetric or CocoMetric). With ``data_root`` the test set is read
from there instead (a copy with other annotations: the tests evaluate a trained SSD on permuted labels and
shifted boxes, which must score far lower). Returns our metric keys in % (as metrics.json:
``mAP``; ``bbox_mAP``, ``bbox_mAP_50``, ... ; a metric mmdet did not report is NaN). Nothing of the run
directory is changed: mmengine's logs go to a temporary work_dir.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

from pws.engine.checkpoints import latest_checkpoint, mmengine_checkpoints
from pws.paper import metrics


def dumped_config(run_dir: str | os.PathLike[str]) -> Path:
    """The newest mmengine config a run dumped (``<run_dir>/<YYYYmmdd_HHMMSS>.py``)."""
    found = sorted(p for p in Path(run_dir).glob("[0-9]*_[0-9]*.py") if p.is_file())
    if not found:
        raise FileNotFoundError(f"{run_dir} has no mmengine config (<timestamp>.py): was the run started?")
    return found[-1]


def evaluate_run(
    run_dir: str | os.PathLike[str],
    data_root: str | os.PathLike[str] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
) -> dict[str, float]:
    """The run's test metrics (%), on ``data_root`` (the same layout as the run's data) if given."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    import pws.detect.registry  # noqa: F401  (imports mmdet: only an evaluation needs it, not this module's importers)

    run_dir = Path(run_dir)
    ckpt = Path(checkpoint) if checkpoint is not None else latest_checkpoint(run_dir)
    if ckpt is None or not ckpt.is_file():
        raise FileNotFoundError(f"{run_dir} has no checkpoint to evaluate")
    cfg = Config.fromfile(str(dumped_config(run_dir)))
    if data_root is not None:
        _point_test_set_to(cfg, str(data_root))
    with tempfile.TemporaryDirectory(prefix="pws-eval-") as work_dir:
        cfg.work_dir = work_dir
        cfg.load_from = str(ckpt)
        cfg.resume = False
        cfg.visualizer = dict(  # a name of its own: mmengine keeps one visualizer per name and process
            type="DetLocalVisualizer",
            name=f"pws-evaluate-{uuid.uuid4().hex[:8]}",
            vis_backends=[dict(type="LocalVisBackend")],
        )
        with mmengine_checkpoints():
            evaluated = Runner.from_cfg(cfg).test()
    return summarize(evaluated)


def _point_test_set_to(cfg: Any, data_root: str) -> None:
    """The test dataloader (and CocoMetric's annotation file) read from ``data_root``."""
    root = data_root.rstrip("/") + "/"
    dataset = cfg.test_dataloader.dataset
    old_root = dataset.data_root
    dataset.data_root = root
    evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
    for evaluator in evaluators:
        if "ann_file" in evaluator:  # CocoMetric reads the annotations itself
            evaluator.ann_file = evaluator.ann_file.replace(old_root, root, 1)


def summarize(evaluated: dict[str, Any]) -> dict[str, float]:
    """mmdet's fractions as our keys in %, for the metrics mmdet reported; one reported as missing (< 0)
    is NaN."""
    return metrics.in_percent(evaluated, {ours: theirs for ours, theirs in metrics.DETECTION.items()
                                          if theirs in evaluated})  # fmt: skip
