"""Every mechanism x bf16 autocast on CPU: the module alone is close to fp32 (output and input gradient), and a
ResNet-18 holding it runs forward and backward in bf16 with finite outputs and gradients, close to fp32.

Tolerances (constants below) are relative L2 errors and cosines measured on this project's AMX CPU with the
same weights and input in both precisions, widened about 2.5x for other CPUs' kernels.
"""

from __future__ import annotations

import copy

import pytest
import torch

from medattn.attention import MECHANISMS, create_attention
from medattn.models import build_model
from medattn.runtime.precision import Precision

MECHANISM_NAMES = list(MECHANISMS)
MODULES = [n for n, m in MECHANISMS.items() if m.factory is not None]
FP32, BF16 = Precision("fp32", "cpu", "test"), Precision("bf16", "cpu", "test")
MODULE_REL_ERROR, MODULE_GRAD_COSINE = 0.025, 0.999  # one module: measured <= 0.0097 and >= 0.9997
MODEL_REL_ERROR = 0.05  # a whole ResNet-18 at random init, batch 4: measured <= 0.017 (plain backbone: 0.007)


def _context(name: str, channels: int, size: int) -> dict:
    """What a placement passes to a conv-replacing mechanism (gating mechanisms take none of it)."""
    full = {"out_channels": channels, "stride": 1, "feat_size": (size, size), "kernel_size": 3, "groups": 1,
            "bias": False}
    return {k: v for k, v in full.items() if k in MECHANISMS[name].context}


def _module_run(module: torch.nn.Module, x: torch.Tensor, precision: Precision):
    x = x.clone().requires_grad_(True)
    with precision.autocast():
        out = module(x)
    out.float().square().mean().backward()
    return out.float().detach(), x.grad


@pytest.mark.parametrize("attention", MODULES)
def test_mechanism_module_in_bf16_is_close_to_fp32(attention):
    torch.manual_seed(0)
    module = create_attention(attention, 32, **_context(attention, 32, 8)).train()
    with torch.no_grad():  # non-local's zero-initialised last BN would make its output the input, untested
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.fill_(1.0)
    x = torch.randn(2, 32, 8, 8)
    ref, ref_grad = _module_run(module, x, FP32)
    out, grad = _module_run(module, x, BF16)
    assert torch.isfinite(out).all() and torch.isfinite(grad).all()
    rel = ((out - ref).norm() / ref.norm()).item()
    cosine = torch.nn.functional.cosine_similarity(grad.flatten(), ref_grad.flatten(), dim=0).item()
    print(f"{attention}: output rel. error {rel:.4f}, input-gradient cosine {cosine:.5f}")
    assert rel < MODULE_REL_ERROR, f"{attention}: bf16 output differs by {rel:.3f} (relative L2) from fp32"
    assert cosine > MODULE_GRAD_COSINE, f"{attention}: bf16 input gradient vs fp32 cosine {cosine:.4f}"


@pytest.mark.parametrize("attention", MECHANISM_NAMES)
def test_resnet18_with_mechanism_trains_in_bf16(attention):
    torch.manual_seed(0)
    model = build_model("resnet18", attention, num_classes=3, in_chans=3, image_size=32).train()
    twin = copy.deepcopy(model)
    x = torch.randn(4, 3, 32, 32)
    with BF16.autocast():
        logits = model(x)
    torch.nn.functional.cross_entropy(logits.float(), torch.tensor([0, 1, 2, 0])).backward()
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    with torch.no_grad():
        ref = twin(x)
    rel = ((logits.float() - ref).norm() / ref.norm()).item()
    print(f"{attention}: logits rel. error {rel:.4f}")
    assert rel < MODEL_REL_ERROR, f"{attention}: bf16 logits differ by {rel:.3f} (relative L2) from fp32"
