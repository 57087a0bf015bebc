"""The GPU code paths, run where CUDA is available (skipped on CPU-only machines such as CI).

On CUDA, PWS standardizes its weights through ``F.batch_norm`` over the weight viewed as
``(1, out_channels, n)`` (cuDNN's fused reduction) rather than the CPU's own function. The forward against
the float64 reference of eq. (12) runs on CUDA among the device-parametrized tests of ``test_pws_conv.py``;
these tests check eq. (13), folding on the GPU and a mixed-precision (autocast) training step. TF32 is
switched off where float32 results are compared.
"""

from __future__ import annotations

import pytest
import torch
from test_fold import assert_same_outputs, perturb, vgg_like
from test_pws_conv import F64, no_tf32, randomize

from pws.nn import PWSConv2d, fold
from pws.optim import param_groups

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda")


def test_cuda_eq13_raw_weight_gradient_has_zero_mean_per_filter():
    layer = randomize(PWSConv2d(8, 16, 3, padding=1, dtype=F64)).to(CUDA)
    x = torch.randn(4, 8, 12, 12, dtype=F64, device=CUDA)
    (layer(x).sin() * torch.randn(4, 16, 12, 12, dtype=F64, device=CUDA)).sum().backward()
    grad = layer.weight.grad.flatten(1)
    assert grad.abs().max() > 1e-3
    assert grad.mean(dim=1).abs().max() <= 1e-12 * grad.abs().max()


def test_cuda_fold_matches_eval():
    model = perturb(vgg_like("pws")).to(CUDA).eval()
    x = torch.randn(2, 3, 16, 16, device=CUDA)
    with torch.no_grad(), no_tf32():
        assert_same_outputs(fold(model)(x), model(x))


@pytest.mark.parametrize("amp_dtype", [torch.float16, torch.bfloat16])
def test_cuda_autocast_training_step_keeps_eq13(amp_dtype):
    """Under autocast the standardization stays in float32; a scaled step is finite and eq. (13) holds."""
    model = vgg_like("pws").to(CUDA)
    opt = torch.optim.SGD(param_groups(model, weight_decay=5e-4), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    x, target = torch.randn(8, 3, 32, 32, device=CUDA), torch.randint(0, 10, (8,), device=CUDA)
    layer = next(m for m in model.modules() if isinstance(m, PWSConv2d))
    with torch.autocast("cuda", dtype=amp_dtype):
        assert layer.effective_weight().dtype == torch.float32
        loss = torch.nn.functional.cross_entropy(model(x), target)
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    grad = layer.weight.grad.flatten(1)
    assert torch.isfinite(loss) and torch.isfinite(grad).all() and grad.abs().max() > 0
    assert grad.mean(dim=1).abs().max() <= 1e-5 * grad.abs().max()
    scaler.step(opt)
    scaler.update()
    assert all(torch.isfinite(p).all() for p in model.parameters())
