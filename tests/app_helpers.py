"""Helpers shared by the app tests of every folder (``tests/`` is on ``sys.path``: ``import app_helpers``).

* :func:`run_cli` -- ``python -m pws.<app> args`` in this process: (exit code, stdout, stderr);
* :class:`WithHooks` -- an app whose Runner gets extra ``custom_hooks`` (the test-only seam: the engine
  itself has no test code);
* :func:`read_json`.
"""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


def run_cli(app: str, args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
            ) -> tuple[int, str, str]:  # fmt: skip
    """``python -m pws.<app> args`` in this process (Hydra, the exit code): (exit code, stdout, stderr)."""
    main = importlib.import_module(f"pws.{app}.app").main
    monkeypatch.setattr(sys, "argv", [f"pws.{app}", *args])
    capsys.readouterr()
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


@dataclass(frozen=True)
class WithHooks:
    """``inner`` (an app) with ``hooks`` (mmengine hook configs) appended to its Runner's ``custom_hooks``."""

    inner: Any
    hooks: list[dict[str, Any]]

    @property
    def name(self) -> str:
        return self.inner.name

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.inner, attr)

    def mmengine_config(self, plan: Any, prepared: dict[str, Any], world_size: int) -> dict[str, Any]:
        cfg = self.inner.mmengine_config(plan, prepared, world_size)
        cfg["custom_hooks"] = [*cfg.get("custom_hooks", []), *self.hooks]
        return cfg


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())
