"""The runner-facing logic of :class:`pws.diagnostics.mmengine_hook.VarianceProbeHook`, free of mmengine.

It needs only what an mmengine Runner offers (``model``, ``iter``, ``epoch``, ``work_dir``, ``rank``,
``optim_wrapper.get_lr()``, and ``train_loop.dataloader`` where there is one), so it is testable (and
usable by another loop) without mmengine installed.

The CSV (``<work_dir>/<filename>``) has the columns :data:`HOOK_COLUMNS` then
:data:`~pws.diagnostics.probe.ROW_COLUMNS`: ``iter`` (0-based training iteration), ``epoch`` (epochs of
data consumed at the start of the iteration, ``iter / iterations per epoch``; the runner's epoch where the
loop has no dataloader length), ``loss`` (the total training loss the model returned for that iteration,
NaN if it returned none). A resumed run keeps the rows of the iterations before the one it resumes at and
writes the rest again, so the file has one row per probed layer and iteration however often the run was
interrupted.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pws.diagnostics.probe import ROW_COLUMNS, VarianceProbe, write_rows

HOOK_COLUMNS: tuple[str, ...] = ("iter", "epoch", "loss")


class ProbeHookLogic:
    """What the hook does, without mmengine (tested with a stand-in runner)."""

    def __init__(
        self,
        module: str | None = "backbone",
        interval: int = 1,
        activations: bool = True,
        filename: str = "variance_probe.csv",
        lr: float | None = None,
        layers: Sequence[int | str] | None = None,
    ) -> None:
        if interval < 1:
            raise ValueError(f"VarianceProbeHook interval must be >= 1, got {interval}")
        self.module = module
        self.layers = None if layers is None else list(layers)
        self.interval = int(interval)
        self.activations = activations
        self.filename = filename
        self.fixed_lr = lr
        self.probe: VarianceProbe | None = None
        self.path: Path | None = None
        self._written = False

    # helpers
    def _target(self, runner: Any) -> nn.Module:
        model = runner.model
        model = getattr(model, "module", model)  # (MM)DistributedDataParallel
        if self.module:
            try:
                model = model.get_submodule(self.module)
            except AttributeError as err:
                raise ValueError(
                    f"VarianceProbeHook: the model has no submodule {self.module!r} "
                    "(module=None probes the whole model)"
                ) from err
        return model

    def _lr(self, runner: Any) -> float:
        if self.fixed_lr is not None:
            return float(self.fixed_lr)
        lrs = runner.optim_wrapper.get_lr()
        values = lrs["lr"] if isinstance(lrs, dict) else lrs
        while isinstance(values, (list, tuple)):
            values = values[0]
        return float(values)

    def _due(self, runner: Any) -> bool:
        return (runner.iter + 1) % self.interval == 0 or runner.iter == 0

    @staticmethod
    def _epoch(runner: Any) -> float:
        try:
            per_epoch = len(runner.train_loop.dataloader)
        except (AttributeError, TypeError):
            per_epoch = 0
        return runner.iter / per_epoch if per_epoch else runner.epoch

    @staticmethod
    def _loss(outputs: Any) -> float:
        value = outputs.get("loss") if isinstance(outputs, dict) else None
        if torch.is_tensor(value) and value.numel() == 1:
            return float(value.detach().float())
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return math.nan

    def _start_file(self, first_iter: int) -> None:
        """Before the first write of this session: keep the rows of earlier iterations (a resumed run), or
        start a new file (a run from iteration 0, or a file in another format)."""
        assert self.path is not None
        if first_iter == 0 or not self.path.exists():
            return
        with self.path.open(newline="") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != (*HOOK_COLUMNS, *ROW_COLUMNS):
                return
            kept = [row for row in reader if int(row["iter"]) < first_iter]
        write_rows(self.path, kept, columns=(*HOOK_COLUMNS, *ROW_COLUMNS))
        self._written = True

    # mmengine hook points
    def before_run(self, runner: Any) -> None:
        self.probe = VarianceProbe(
            self._target(runner),
            lr=self.fixed_lr or 0.0,
            layers=self.layers,
            activations=self.activations,
            keep_rows=False,
        )
        self.probe.enabled = False
        self.path = Path(runner.work_dir) / self.filename
        self._written = False

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        if self.probe is None:
            return
        self.probe.enabled = self._due(runner)
        if self.probe.enabled:
            self.probe.lr = self._lr(runner)

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        if self.probe is None or not self.probe.enabled:
            return
        rows = self.probe.step(runner.iter)
        self.probe.enabled = False
        if getattr(runner, "rank", 0) == 0 and self.path is not None:
            if not self._written:
                self._start_file(runner.iter)
            extra = {"iter": runner.iter, "epoch": self._epoch(runner), "loss": self._loss(outputs)}
            write_rows(self.path, rows, extra=extra, append=self._written)
            self._written = True

    def after_run(self, runner: Any) -> None:
        if self.probe is not None:
            self.probe.detach()
            self.probe = None
