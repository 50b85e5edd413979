"""Render survey panels once, at creation: the plain image and each map over it, all with one colour map.

Maps are shown as stored (values in [0, 1], no per-map rescaling), so equal values look equal on every
panel. Images are upscaled to a common display size (Lanczos for the image, bilinear for the maps).
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib import colormaps
from PIL import Image

COLORMAP = "jet"
DISPLAY_SIZE = 320
ALPHA = 0.45


def image_rgb(image: np.ndarray, size: int = DISPLAY_SIZE) -> np.ndarray:
    """Return a uint8 C x H x W image as an RGB uint8 array of ``size`` x ``size`` (grey repeated)."""
    channels = image.shape[0]
    hwc = np.repeat(image[:1], 3, axis=0) if channels < 3 else image[:3]
    pil = Image.fromarray(np.ascontiguousarray(hwc.transpose(1, 2, 0)), "RGB")
    return np.asarray(pil.resize((size, size), Image.Resampling.LANCZOS))


def overlay(rgb: np.ndarray, heat: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Return ``rgb`` blended with the colour-mapped ``heat`` (H' x W' in [0, 1], resized to the image)."""
    size = rgb.shape[:2][::-1]
    heat_img = Image.fromarray(np.clip(heat.astype(np.float32), 0, 1), "F").resize(size, Image.Resampling.BILINEAR)
    coloured = colormaps[COLORMAP](np.clip(np.asarray(heat_img), 0, 1))[..., :3] * 255
    return np.round((1 - alpha) * rgb + alpha * coloured).astype(np.uint8)


def legend(width: int = DISPLAY_SIZE, height: int = 14) -> np.ndarray:
    """Return the colour bar (low on the left, high on the right) as an RGB uint8 array."""
    ramp = colormaps[COLORMAP](np.linspace(0, 1, width))[..., :3] * 255
    return np.repeat(ramp[None].astype(np.uint8), height, axis=0)


def png_bytes(rgb: np.ndarray) -> bytes:
    """Return an RGB uint8 array encoded as PNG."""
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
