"""The detection stack is part of the install (``make install``: mmcv with its compiled ops, mmengine, mmdet),
so a test that needs it FAILS when it does not import: a broken install must not turn the detection tests
into skips. ``PWS_TESTS_WITHOUT_DETECTION=1`` skips them on purpose (named in the failure message).
``tests/`` is on ``sys.path``: ``from detection_stack import require_detection_stack``.
"""

from __future__ import annotations

import importlib
import os

import pytest

OPT_OUT = "PWS_TESTS_WITHOUT_DETECTION"
MODULES = ("mmengine", "mmcv", "mmcv.ops", "mmdet")


def require_detection_stack() -> None:
    """Return if the stack imports; skip if ``PWS_TESTS_WITHOUT_DETECTION=1``; fail otherwise (at a module's
    top level: a collection error, which fails ``make test``)."""
    if os.environ.get(OPT_OUT) == "1":
        pytest.skip(f"{OPT_OUT}=1: the detection stack's tests skipped on purpose", allow_module_level=True)
    for module in MODULES:
        try:
            importlib.import_module(module)
        except Exception as err:  # noqa: BLE001 - ImportError, or an mmcv built against another torch
            pytest.fail(
                f"the detection stack does not import ({module}: {type(err).__name__}: {err}); "
                f"`make install` installs it (scripts/install_mmcv.sh); {OPT_OUT}=1 skips them on purpose",
                pytrace=False,
            )
