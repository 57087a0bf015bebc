"""Detection on mmdetection (Tables 1, 2 and 3 of the paper): ``python -m pws.detect``.

* :mod:`pws.detect.registry` -- load through mmengine ``custom_imports``: registers the PWS and WN convs,
  the plain He-initialized conv, SN, LN2d and NoNorm norms, the VGG-16 SSD backbone with conv/norm configs,
  the fixed SSD head, and the engine's hooks and loop (:mod:`pws.engine`);
* :mod:`pws.detect.models` -- mmdet model configs (SSD-VGG16, SSD-R50, Mask R-CNN R50-FPN) with the
  normalization method mapped to ``conv_cfg``/``norm_cfg``;
* :mod:`pws.detect.config` -- Hydra config -> mmengine config;
* :mod:`pws.detect.app` -- the app of :mod:`pws.engine` (``python -m pws.detect``).

Importing this package does not import mmdet; the submodules that need the stack import it.
``run(cfg, run_dir)`` is the programmatic entry (a config composed with Hydra's compose API).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pws.detect.app import DETECT
from pws.engine.lifecycle import execute


def run(cfg: Any, run_dir: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Run (or resume, or skip) the detection run ``cfg`` (a composed Hydra config) in ``run_dir``."""
    return execute(DETECT, cfg, run_dir, overrides)
