"""Progress of a run: tqdm bars (epochs, steps) on a terminal, plain log lines otherwise (files, CI, SLURM).

Only rank 0 reports. Without a terminal a step line is logged at most every ``interval_s`` seconds, and
every epoch ends with one summary line (the same in both modes).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from tqdm import tqdm

log = logging.getLogger("pws.classify")


def is_tty() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class Progress:
    """Epoch and step progress for one run."""

    def __init__(self, epochs: int, start_epoch: int, *, enabled: bool, tty: bool | None = None,
                 interval_s: float = 60.0) -> None:  # fmt: skip
        self.enabled = enabled
        self.tty = is_tty() if tty is None else tty
        self.interval_s = interval_s
        self.epochs = epochs
        self._epoch_bar: Any = None
        self._step_bar: Any = None
        self._last_line = time.monotonic()
        self._epoch = start_epoch
        self._steps = 0
        if self.enabled and self.tty:
            self._epoch_bar = tqdm(total=epochs, initial=start_epoch, desc="epochs", unit="ep",
                                   dynamic_ncols=True)  # fmt: skip

    def start_epoch(self, epoch: int, steps: int, start_step: int) -> None:
        self._epoch, self._steps = epoch, steps
        if self.enabled and self.tty:
            self._step_bar = tqdm(total=steps, initial=start_step, desc=f"epoch {epoch + 1}/{self.epochs}",
                                  unit="step", leave=False, dynamic_ncols=True)  # fmt: skip

    def steps(self, n: int, step: int, **values: float) -> None:
        """``n`` more steps done (``step`` in total this epoch), with the running values to show."""
        if not self.enabled:
            return
        if self._step_bar is not None:
            self._step_bar.update(n)
            self._step_bar.set_postfix({k: f"{v:.4g}" for k, v in values.items()}, refresh=False)
        elif time.monotonic() - self._last_line >= self.interval_s:
            self._last_line = time.monotonic()
            shown = " ".join(f"{k} {v:.4g}" for k, v in values.items())
            log.info("epoch %d/%d step %d/%d %s", self._epoch + 1, self.epochs, step, self._steps, shown)

    def end_epoch(self, line: str) -> None:
        if not self.enabled:
            return
        if self._step_bar is not None:
            self._step_bar.close()
            self._step_bar = None
        if self._epoch_bar is not None:
            self._epoch_bar.update(1)
            self._epoch_bar.set_postfix_str(line, refresh=True)
        self._last_line = time.monotonic()
        log.info(line)

    def close(self) -> None:
        for bar in (self._step_bar, self._epoch_bar):
            if bar is not None:
                bar.close()
        self._step_bar = self._epoch_bar = None
