"""Segmentation models: every variant builds, keeps the image size and trains in bf16 close to fp32; joint
augmentation moves masks with their images; refused names and placements give one-line ModelErrors."""

from __future__ import annotations

import copy

import pytest
import torch

from medattn.errors import ModelError
from medattn.runtime.precision import Precision
from medattn.segment.augment import augment_pair
from medattn.segment.unet import build_segmenter, segmentation_attentions, set_recording
from medattn.train.config import AugmentConfig

VARIANTS = ["none", "gate", "canet", "transformer", "cbam"]  # cbam stands for the zoo in the decoder
FP32, BF16 = Precision("fp32", "cpu", "test"), Precision("bf16", "cpu", "test")
# Logits: the classifiers' whole-model tolerance (tests/attention/test_attention_bf16.py). Weight gradients: a
# sanity bound only (a wrong dtype or a detached branch drops far below it); measured 0.96-0.999, lowest for the
# gated variants, whose one-channel batch norm in the gate amplifies bf16 rounding at random init. The ResNet
# encoder's deepest map is 1/32 of the image: at 32 px a gate's batch norm there sees 2 values and the gradient
# cosine falls to 0.36 (measured), hence 64 px (cosine 0.995).
MODEL_REL_ERROR, GRAD_COSINE = 0.05, 0.9


def _step(model: torch.nn.Module, x: torch.Tensor, precision: Precision):
    model.zero_grad()
    with precision.autocast():
        out = model(x)
    out.float().square().mean().backward()
    grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return out.float().detach(), grad


@pytest.mark.parametrize(("backbone", "attention", "size"),
                         [("unet", a, 16) for a in VARIANTS] + [("unet_resnet18", "gate", 64)])
def test_variant_in_bf16_is_close_to_fp32_and_keeps_the_size(backbone, attention, size):
    torch.manual_seed(0)
    model = build_segmenter(backbone, attention, image_size=size).train()
    x = torch.randn(2, 3, size, size)
    ref, ref_grad = _step(copy.deepcopy(model), x, FP32)
    out, grad = _step(model, x, BF16)
    assert ref.shape == (2, 2, size, size)
    assert torch.isfinite(out).all() and torch.isfinite(grad).all()
    rel = ((out - ref).norm() / ref.norm()).item()
    cosine = torch.nn.functional.cosine_similarity(grad, ref_grad, dim=0).item()
    assert rel < MODEL_REL_ERROR, f"{attention}: bf16 logits differ by {rel:.3f} (relative L2) from fp32"
    assert cosine > GRAD_COSINE, f"{attention}: bf16 weight gradient vs fp32 cosine {cosine:.4f}"


def test_timm_encoder_unet_upsamples_to_the_input_size():
    out = build_segmenter("unet_resnet18", "gate", image_size=64).eval()(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 2, 64, 64)


def test_zoo_placement_puts_the_mechanism_only_where_asked():
    model = build_segmenter("unet", "se", image_size=32, placement={"where": "skip", "levels": [0]})
    placed = [name for name, m in model.named_modules() if type(m).__name__ == "SEModule"]
    assert placed == ["skip_attn.2"]  # decoder list runs coarse to fine: level 0 is the last of 3


def test_gate_maps_are_recorded_per_gate():
    model = build_segmenter("unet", "gate", image_size=32).eval()
    set_recording(model)
    model(torch.randn(2, 3, 32, 32))
    from medattn.segment.unet import gate_maps

    assert gate_maps(model, (32, 32)).shape == (2, 3, 32, 32)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"backbone": "vnet"}, "unknown segmentation backbone 'vnet'; use one of unet"),
    ({"attention": "foo"}, "unknown segmentation attention 'foo'; use one of none, gate, canet, transformer"),
    ({"attention": "mhsa"}, "attention 'mhsa' replaces a convolution"),
    ({"attention": "gate", "placement": {"where": "skip"}}, "takes no placement or options"),
    ({"attention": "se", "placement": {"where": "encoder"}}, "placement where='encoder' for a U-Net"),
    ({"attention": "se", "placement": {"levels": [5]}}, "placement levels 5 out of range"),
    ({"image_size": 36}, "image size 36 is not divisible by 8"),
])
def test_refused_models_name_the_problem(kwargs, message):
    with pytest.raises(ModelError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_segmenter(**{"image_size": 32, **kwargs})
    assert "transformer" in segmentation_attentions()


def test_joint_augmentation_moves_the_mask_with_its_image():
    gen = torch.Generator().manual_seed(0)
    masks = torch.zeros(16, 24, 24, dtype=torch.uint8)
    for i in range(16):
        masks[i, 2 + i % 5:10 + i % 7, 4:9 + i % 11] = 1
    images = masks[:, None].float().expand(-1, 3, -1, -1).clone()  # the image is its mask
    cfg = AugmentConfig(rotate_deg=30, scale=0.2, translate=0.1, brightness=0, contrast=0, saturation=0)
    x, m = augment_pair(images, masks, cfg, gen)
    assert m.dtype == torch.long and not torch.equal(m, masks.long())  # something moved
    assert torch.equal((x[:, 0] > 0.5).long(), m)  # the same warp on both


def test_colour_jitter_leaves_the_mask_alone():
    gen = torch.Generator().manual_seed(1)
    masks = torch.zeros(8, 16, 16, dtype=torch.uint8)
    masks[:, 4:12, 4:12] = 1
    images = torch.full((8, 3, 16, 16), 0.5)
    cfg = AugmentConfig(hflip=False, vflip=False, rot90=False, rotate_deg=0, scale=0, translate=0, brightness=0.5)
    x, m = augment_pair(images, masks, cfg, gen)
    assert torch.equal(m, masks.long()) and not torch.allclose(x, images)
