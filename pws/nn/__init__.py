"""Layers: the PWS conv (eq. 12), the baselines, the method table and the factory that builds them by name,
fold and convert; the fused standardization of a whole network (one segmented op per step)."""

from pws.nn.convert import convert
from pws.nn.factory import METHODS, OUTPUT_NORMS, ConvNorm, NormMethod, as_method, he_init
from pws.nn.fold import fold
from pws.nn.fused import FusedStandardization, fuse_standardization, standardize_all, unfuse_standardization
from pws.nn.methods import METHOD_TABLE, Method, ReparametrizedConv, mmcv_cfgs
from pws.nn.pws_conv import PWSConv2d, standardize_weight
from pws.nn.switchable_norm import SwitchNorm2d
from pws.nn.weight_norm import WNConv2d

__all__ = [
    "METHODS",
    "METHOD_TABLE",
    "OUTPUT_NORMS",
    "ConvNorm",
    "FusedStandardization",
    "Method",
    "NormMethod",
    "PWSConv2d",
    "ReparametrizedConv",
    "SwitchNorm2d",
    "WNConv2d",
    "as_method",
    "convert",
    "fold",
    "fuse_standardization",
    "he_init",
    "mmcv_cfgs",
    "standardize_all",
    "standardize_weight",
    "unfuse_standardization",
]
