"""wandb logging for every run: offline by default (no network), ``WANDB_MODE=online`` or ``disabled``.

Project per table (``pws-<table>``, or ``pws-repro`` for runs outside a table), group per table row, run
name from the cell. ``metrics.json`` stays the source of truth for tables; wandb is the dashboard.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


class Tracker:
    """A thin wrapper over one wandb run; every call is a no-op when wandb is disabled."""

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        config: dict[str, Any],
        *,
        mode: str | None = None,
        project: str = "pws-repro",
        group: str | None = None,
        name: str | None = None,
        tags: list[str] | None = None,
    ) -> None:
        mode = os.environ.get("WANDB_MODE") or mode or "offline"
        self.run = None
        if mode == "disabled":
            return
        import wandb

        self.run = wandb.init(
            dir=str(Path(run_dir)),
            mode=mode,
            project=project,
            group=group,
            name=name,
            tags=tags,
            config=config,
            reinit="finish_previous",
            settings=wandb.Settings(silent=True, console="off"),
        )

    @property
    def run_folder(self) -> Path | None:
        """The folder wandb writes this run into (``wandb sync <folder>`` uploads an offline run)."""
        return Path(self.run.dir).parent if self.run is not None else None

    def log(self, values: dict[str, Any], step: int | None = None) -> None:
        if self.run is not None:
            self.run.log(values, step=step)

    def finish(self, summary: dict[str, Any]) -> None:
        """Write the final metrics into the run's summary and close it."""
        if self.run is None:
            return
        for key, value in summary.items():
            self.run.summary[key] = value
        self.run.finish()
        self.run = None
