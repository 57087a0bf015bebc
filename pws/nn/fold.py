"""Fold trained layers into plain ``nn.Conv2d`` for inference.

"PWS can be reset to a normal conv layer in the inference stage": after training, the kernel
``alpha_o * W_hat_o`` of eq. (12) is a constant, so a PWS conv *is* a conv with weight ``alpha_o W_hat_o``
and bias ``beta_o``. The same holds for a WN conv (``g_o V_o / ||V_o||``) and for a conv followed by
BatchNorm in eval mode (the paper's ``P_o = W_o / sigma_o``, ``Q_o = beta_o - mu_o / sigma_o``, with BN's
affine scale and shift folded in as well).
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter

import torch
import torch.fx
from torch import nn

from pws.nn.methods import ReparametrizedConv

_BATCH_NORMS = (nn.BatchNorm2d,)


def fold(model: nn.Module) -> nn.Module:
    """Return an eval-mode copy of ``model`` with PWS/WN convs and conv+BN pairs as plain convs.

    Outputs equal ``model.eval()``'s to float rounding; no conv that computes its kernel (a
    :class:`~pws.nn.methods.ReparametrizedConv`: PWSConv2d, WNConv2d) is left, and every BatchNorm2d
    that directly follows a conv (and is that conv's only consumer) becomes an Identity.
    The result is ordinary PyTorch: it runs under ``torch.jit.script`` and ``torch.export``.
    """
    folded = copy.deepcopy(model).eval()
    if _computes_its_kernel(folded):  # the model is one layer
        return plain_conv_like(folded, kernel_of(folded), folded.bias)
    for name, module in list(folded.named_modules()):
        if _computes_its_kernel(module):
            folded.set_submodule(name, plain_conv_like(module, kernel_of(module), module.bias))
    for conv_name, bn_name in conv_bn_pairs(folded):
        conv = folded.get_submodule(conv_name)
        bn = folded.get_submodule(bn_name)
        folded.set_submodule(conv_name, fold_conv_bn(conv, bn))
        folded.set_submodule(bn_name, nn.Identity())
    return folded


def _computes_its_kernel(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and isinstance(module, ReparametrizedConv)


@torch.no_grad()
def kernel_of(conv: nn.Conv2d) -> torch.Tensor:
    """The kernel a conv convolves with, asked of the layer: ``effective_weight()`` of a
    :class:`~pws.nn.methods.ReparametrizedConv` (``alpha_o W_hat_o`` of eq. 12 for PWS, ``g_o V_o/||V_o||``
    for WN), the ``weight`` of any other conv."""
    if isinstance(conv, ReparametrizedConv):
        return conv.effective_weight()
    return conv.weight


@torch.no_grad()
def plain_conv_like(
    conv: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor | None
) -> nn.Conv2d:
    """A plain ``nn.Conv2d`` with ``conv``'s geometry and the given weight and bias."""
    plain = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        conv.dilation, conv.groups, bias is not None, conv.padding_mode,
        device=weight.device, dtype=weight.dtype,
    )
    plain.weight.copy_(weight)
    if bias is not None:
        plain.bias.copy_(bias)
    return plain.train(conv.training)


@torch.no_grad()
def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """Conv then eval-mode BN as one conv: ``W' = W * s``, ``b' = (b - mu) * s + beta``, ``s = g / sigma``."""
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.affine:
        scale = scale * bn.weight
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    new_bias = (bias - bn.running_mean) * scale
    if bn.affine:
        new_bias = new_bias + bn.bias
    return plain_conv_like(conv, conv.weight * scale.view(-1, 1, 1, 1), new_bias)


def conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """Names of (conv, BN) pairs where the BN's only input is the conv's output and nothing else reads it.

    Each module must be called once. Found on the torch.fx graph of the model; models that fx cannot trace
    fall back to adjacent children of ``nn.Sequential`` containers.
    """
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # noqa: BLE001 - any tracing failure means: use the structural fallback
        return _sequential_pairs(model)
    modules = dict(model.named_modules())
    calls = Counter(node.target for node in graph.nodes if node.op == "call_module")
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not _foldable_bn(modules.get(node.target)):
            continue
        source = node.args[0]
        if (
            isinstance(source, torch.fx.Node)
            and source.op == "call_module"
            and type(modules.get(source.target)) is nn.Conv2d
            and len(source.users) == 1
            and calls[source.target] == calls[node.target] == 1
        ):
            pairs.append((source.target, node.target))
    return pairs


def _sequential_pairs(model: nn.Module) -> list[tuple[str, str]]:
    pairs = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (a_name, a), (b_name, b) in itertools.pairwise(children):
            if type(a) is nn.Conv2d and _foldable_bn(b):
                prefix = f"{name}." if name else ""
                pairs.append((prefix + a_name, prefix + b_name))
    return pairs


def _foldable_bn(module: nn.Module | None) -> bool:
    """A BatchNorm2d that uses running statistics in eval mode (without them it normalizes by the batch)."""
    return isinstance(module, _BATCH_NORMS) and module.running_var is not None
