"""The runner-facing logic of :class:`pws.diagnostics.mmengine_hook.VarianceProbeHook`, free of mmengine.

It needs only what an mmengine Runner offers (``model``, ``iter``, ``epoch``, ``work_dir``, ``rank``,
``optim_wrapper.get_lr()``), so it is testable (and usable by another loop) without mmengine installed.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

from torch import nn

from pws.diagnostics.probe import VarianceProbe, write_rows


class ProbeHookLogic:
    """What the hook does, without mmengine (tested with a stand-in runner)."""

    def __init__(
        self,
        module: str | None = "backbone",
        interval: int = 1,
        activations: bool = True,
        filename: str = "variance_probe.csv",
        lr: float | None = None,
    ) -> None:
        if interval < 1:
            raise ValueError(f"VarianceProbeHook interval must be >= 1, got {interval}")
        self.module = module
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

    # mmengine hook points
    def before_run(self, runner: Any) -> None:
        self.probe = VarianceProbe(
            self._target(runner), lr=self.fixed_lr or 0.0, activations=self.activations, keep_rows=False
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
            write_rows(self.path, rows, extra={"iter": runner.iter, "epoch": runner.epoch},
                       append=self._written)  # fmt: skip
            self._written = True

    def after_run(self, runner: Any) -> None:
        if self.probe is not None:
            self.probe.detach()
            self.probe = None


HOOK_MODULE = "pws.diagnostics.mmengine_hook"


def with_variance_probe(
    config: dict[str, Any],
    *,
    module: str | None = "backbone",
    interval: int = 1,
    activations: bool = True,
    filename: str = "variance_probe.csv",
    lr: float | None = None,
) -> dict[str, Any]:
    """A copy of an mmengine config dict that also runs ``VarianceProbeHook`` (and imports its module).

    Works on any mmengine/mmdet config given as a dict, e.g. the one ``pws.detect.config.build_config``
    returns: ``Runner.from_cfg(Config(with_variance_probe(cfg, module="backbone", interval=10)))``. When
    mmengine is installed the hook's module is imported here as well, because ``Config(dict)`` (unlike
    ``Config.fromfile``) does not run ``custom_imports``.
    """
    if importlib.util.find_spec("mmengine") is not None:
        importlib.import_module(HOOK_MODULE)  # registers VarianceProbeHook
    out = dict(config)
    imports = dict(out.get("custom_imports") or {"imports": [], "allow_failed_imports": False})
    names = list(imports.get("imports", []))
    if HOOK_MODULE not in names:
        names.append(HOOK_MODULE)
    imports["imports"] = names
    out["custom_imports"] = imports
    hook = dict(type="VarianceProbeHook", module=module, interval=interval, activations=activations,
                filename=filename, lr=lr)  # fmt: skip
    out["custom_hooks"] = [*(out.get("custom_hooks") or []), hook]
    return out
