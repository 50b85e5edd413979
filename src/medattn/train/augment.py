"""Batched on-device augmentation and normalisation of uint8 image batches (no per-sample Python)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from medattn.train.config import AugmentConfig


def channel_stats(images: torch.Tensor, max_images: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (in [0, 1] units) of a uint8 (N, C, H, W) tensor, from at most `max_images`."""
    step = max(1, images.shape[0] // max_images)
    x = images[::step].float().div_(255)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return mean, std


def to_float(batch: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """Normalise a uint8 batch to float (x/255 - mean)/std, resized to `size` if given."""
    x = batch.float().div_(255)
    if size is not None and x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def augment(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Randomly flip, rotate, scale, shift and colour-jitter a float batch in [0, 1], per sample, in one pass.

    Right-angle rotations, flips, the small rotation, scaling and shift are folded into one affine matrix per
    sample, so the batch is resampled once. Random parameters are drawn on the CPU from `gen`, which makes
    runs reproducible on any device.
    """
    if not cfg.enabled or cfg.strength == 0:
        return x
    x = _geometry(x, cfg, gen)
    return _colour(x, cfg, gen).clamp_(0, 1)


def _coin(b: int, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(b, generator=gen) < 0.5


def _uniform(b: int, half_width: float, gen: torch.Generator) -> torch.Tensor:
    return (torch.rand(b, generator=gen) * 2 - 1) * half_width


def _geometry(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    b, s = x.shape[0], cfg.strength
    angle = _uniform(b, math.radians(min(cfg.rotate_deg * s, 180.0)), gen)
    scale = 1 + _uniform(b, min(cfg.scale * s, 0.9), gen)
    shift = torch.stack([_uniform(b, cfg.translate * s * 2, gen), _uniform(b, cfg.translate * s * 2, gen)], 1)
    transpose = _coin(b, gen) & (cfg.rot90 and x.shape[-1] == x.shape[-2])
    hflip, vflip = _coin(b, gen) & cfg.hflip, _coin(b, gen) & cfg.vflip
    if not (angle.any() or (scale != 1).any() or shift.any()):
        return _dihedral_exact(x, transpose, hflip, vflip)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    linear = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)  # (B, 2, 2)
    # Output pixel p samples the input at M p + shift with M = T diag(h, v) L: flips negate rows of the
    # continuous part L, then the transposition T swaps them (the same order as _dihedral_exact).
    signs = torch.stack([1 - 2 * hflip.float(), 1 - 2 * vflip.float()], 1).view(b, 2, 1)
    linear = linear * signs
    linear = torch.where(transpose.view(b, 1, 1), linear.flip(1), linear)
    theta = torch.cat([linear, shift.view(b, 2, 1)], 2)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _dihedral_exact(x: torch.Tensor, transpose, hflip, vflip) -> torch.Tensor:
    """Right-angle rotations and flips without resampling (used when no continuous transform is drawn)."""
    def where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.where(mask.to(x.device).view(-1, 1, 1, 1), a, b) if mask.any() else b

    x = where(transpose, x.transpose(-1, -2), x)
    x = where(hflip, x.flip(-1), x)
    return where(vflip, x.flip(-2), x)


def _colour(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    b, s = x.shape[0], cfg.strength
    view = (b, 1, 1, 1)

    def factor(half_width: float) -> torch.Tensor:
        return (1 + _uniform(b, min(half_width * s, 0.95), gen)).to(x.device).view(view)

    if cfg.brightness > 0:
        x = x * factor(cfg.brightness)
    if cfg.contrast > 0:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * factor(cfg.contrast) + mean
    if x.shape[1] == 3 and cfg.saturation > 0:
        gray = (x * torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
        x = (x - gray) * factor(cfg.saturation) + gray
    return x
