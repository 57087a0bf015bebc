"""The variance probe as an mmengine ``Hook``, for detectors (or any model) trained by mmengine's Runner.

Importing this module imports mmengine (``pws.diagnostics`` itself does not). In a config::

    custom_imports = dict(imports=["pws.diagnostics.mmengine_hook"], allow_failed_imports=False)
    custom_hooks = [dict(type="VarianceProbeHook", module="backbone", interval=1)]

or as an object: ``runner.register_hook(VarianceProbeHook(module="backbone"))``. A classification run of
:mod:`pws.classify` adds it with ``probe.enabled=true`` (``configs/classify.yaml``'s ``probe`` section).

At each probed training iteration (every ``interval``-th) the hook enables a
:class:`~pws.diagnostics.probe.VarianceProbe` on ``model.<module>`` (the whole model if ``module`` is None;
a DDP wrapper is looked through) with the optimizer's current LR of its first parameter group, and after the
iteration appends one row per probed conv layer to ``<work_dir>/<filename>`` (CSV, columns ``iter``,
``epoch``, ``loss`` and :data:`~pws.diagnostics.probe.ROW_COLUMNS`; see
:mod:`pws.diagnostics.runner_hook`). The gradient numbers come from a hook on each conv weight that fires as
soon as its gradient is accumulated -- inside mmengine's ``train_step``, before the optimizer step and
before any gradient clipping -- so ``dW = LR * grad`` is the paper's ``LR x nabla_W L``. The probe reads
only (see :mod:`pws.diagnostics.probe`); on other iterations its hooks return at once.

Priority ``HIGHEST``: after an iteration the row is written before a hook of the same priority registered
later, such as :class:`pws.engine.hooks.DivergenceHook`, ends the run on a non-finite loss, so the step that
diverged is recorded too.
"""

from __future__ import annotations

from collections.abc import Sequence

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from pws.diagnostics.runner_hook import ProbeHookLogic


@HOOKS.register_module(force=True)
class VarianceProbeHook(ProbeHookLogic, Hook):
    """mmengine hook: the variance probe at every ``interval``-th training iteration (see module docs).

    Args:
        module: submodule of the model to probe (``"backbone"`` for mmdet detectors, ``"net"`` for
            :mod:`pws.classify`'s classifier; None: the whole model).
        interval: probe every ``interval``-th iteration (and the first).
        activations: also record the forward numbers (inputs, outputs, eq. 5); False: weights/gradients only.
        filename: CSV written in the runner's ``work_dir``.
        lr: LR of ``dW = LR * grad``; None reads the optimizer's current LR (first parameter group).
        layers: the conv layers of ``module`` to probe (1-based, in ``named_modules`` order, or module
            names); None: all.
    """

    priority = "HIGHEST"

    def __init__(self, module: str | None = "backbone", interval: int = 1, activations: bool = True,
                 filename: str = "variance_probe.csv", lr: float | None = None,
                 layers: Sequence[int | str] | None = None) -> None:  # fmt: skip
        ProbeHookLogic.__init__(self, module, interval, activations, filename, lr, layers)


__all__ = ["ProbeHookLogic", "VarianceProbeHook"]
