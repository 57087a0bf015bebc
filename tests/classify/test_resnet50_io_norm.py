"""Table 5's LayerNorms at the input and the output of ResNet-50 are a per-method setting with its source
(pws/models/resnet50.py IO_NORM): on for PWS as the paper says, and the built network follows the table."""

from __future__ import annotations

import pytest
from torch import nn

from pws.models.resnet50 import IO_NORM, resnet50
from pws.nn.factory import NormMethod
from pws.nn.methods import METHOD_TABLE


def test_every_method_has_a_choice_and_its_source() -> None:
    assert set(IO_NORM) == set(METHOD_TABLE)
    assert IO_NORM["pws"][0] and "the paper" in IO_NORM["pws"][1]  # the paper's setting for PWS
    for method in ("wn", "none"):
        assert IO_NORM[method][0] and "project's choice" in IO_NORM[method][1]
    for method in ("bn", "gn", "ln", "in", "sn"):
        assert not IO_NORM[method][0] and IO_NORM[method][1]


@pytest.mark.parametrize("method", ["pws", "wn", "gn"])
def test_the_network_follows_the_table(method: str) -> None:
    net = resnet50(NormMethod(method), num_classes=4)
    on = IO_NORM[method][0]
    assert isinstance(net.layer4[-1].out_norm, nn.GroupNorm) == on
    stem = net.bn1
    if on:
        assert isinstance(stem, nn.GroupNorm) and stem.num_groups == 1  # LN over C, H, W
    off = resnet50(NormMethod(method), num_classes=4, io_norm=False)
    assert isinstance(off.layer4[-1].out_norm, nn.Identity)
