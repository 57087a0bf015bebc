"""Layers: the PWS conv (eq. 12), the baselines, the factory that builds them by name, fold and convert."""

from pws.nn.convert import convert
from pws.nn.factory import METHODS, OUTPUT_NORMS, ConvNorm, NormMethod, as_method, he_init
from pws.nn.fold import fold
from pws.nn.pws_conv import PWSConv2d, standardize_weight
from pws.nn.switchable_norm import SwitchNorm2d
from pws.nn.weight_norm import WNConv2d

__all__ = [
    "METHODS",
    "OUTPUT_NORMS",
    "ConvNorm",
    "NormMethod",
    "PWSConv2d",
    "SwitchNorm2d",
    "WNConv2d",
    "as_method",
    "convert",
    "fold",
    "he_init",
    "standardize_weight",
]
