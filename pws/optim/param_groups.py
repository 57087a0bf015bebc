"""Which parameters are exempt from weight decay, and the same rule for torch optimizers and mmengine.

The rule: every ``alpha`` of a :class:`~pws.nn.PWSConv2d` (and nothing else) has weight decay 0. It is
selected by the parameter object itself, never by tensor rank (biases and norm scales keep their decay,
as in the authors' code).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from pws.nn.pws_conv import PWSConv2d

ALPHA_NAME = "alpha"


def no_decay_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The trainable alpha of every PWSConv2d in ``model`` (shared modules counted once)."""
    seen: dict[int, nn.Parameter] = {}
    for module in model.modules():
        if isinstance(module, PWSConv2d) and isinstance(module.alpha, nn.Parameter):
            seen[id(module.alpha)] = module.alpha
    return list(seen.values())


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups for ``torch.optim``: everything trainable with ``weight_decay``, and alpha with 0."""
    exempt = {id(p) for p in no_decay_parameters(model)}
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if id(p) in exempt else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def mmengine_paramwise_cfg() -> dict[str, Any]:
    """The same rule for mmengine's ``optim_wrapper.paramwise_cfg``: names ending in ``.alpha`` get decay 0.

    mmengine matches ``custom_keys`` as substrings of ``"<module path>.<param name>"``; PWSConv2d's gain is
    the only parameter of the project named ``alpha``.
    """
    return {"custom_keys": {f".{ALPHA_NAME}": {"decay_mult": 0.0}}}
