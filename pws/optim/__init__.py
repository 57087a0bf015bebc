"""Optimizer parameter groups: PWS's alpha gets no weight decay ("Weight decay for alpha_o is 0")."""

from pws.optim.param_groups import ALPHA_NAME, mmengine_paramwise_cfg, no_decay_parameters, param_groups

__all__ = ["ALPHA_NAME", "mmengine_paramwise_cfg", "no_decay_parameters", "param_groups"]
