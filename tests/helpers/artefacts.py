"""A tiny artefact-template folder in the Katsch et al. layout (meta.json + PNGs), for data/artefacts tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def _png(path: Path, rgb: np.ndarray) -> None:
    """Write a (h, w, 3) uint8 array as PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb.astype(np.uint8)).save(path)


def make_template_folder(root: Path) -> Path:
    """A tiny template folder: a bubble pair (+40 on a 3x3 block, a 5x5 canvas), a dark ring marking (circle),
    a violet spot, a peripheral ruler strip and an across ruler, all at 'field' scale."""
    base = np.full((5, 5, 3), 120, np.uint8)
    bub = base.copy()
    bub[1:4, 1:4] += 40
    _png(root / "src/B1/B1_with_01.png", bub)
    _png(root / "src/B1/B1_without_01.png", base)
    ring = np.full((21, 21, 3), 255, np.uint8)
    yy, xx = np.mgrid[:21, :21]
    ring[np.abs(np.hypot(yy - 10, xx - 10) - 8.5) < 1.2] = (60, 40, 120)
    _png(root / "src/C1/C1_01.png", ring)
    spot = np.full((4, 6, 3), 255, np.uint8)
    spot[1:3, 1:5] = (128, 64, 200)
    _png(root / "src/S1/S1_01.png", spot)
    strip = np.full((4, 40, 3), 100, np.uint8)
    ticks = strip.copy()
    ticks[:, ::4] = 20
    _png(root / "src/R1/R1_with_01.png", ticks)
    _png(root / "src/R1/R1_without_01.png", strip)
    _png(root / "src/R2/R2_with_01.png", ticks[:, :16])
    _png(root / "src/R2/R2_without_01.png", strip[:, :16])
    meta = {"artefacts": [
        {"class": "bubble", "preprocessor": "difference", "name": "B1", "artefact_folder": "src/B1"},
        {"class": "marking", "subclass": "circle", "name": "C1", "artefact_folder": "src/C1"},
        {"class": "marking", "subclass": "spot", "name": "S1", "artefact_folder": "src/S1"},
        {"class": "ruler", "subclass": "vertical", "preprocessor": "difference", "name": "R1",
         "artefact_folder": "src/R1"},
        {"class": "ruler", "subclass": "horizontal", "preprocessor": "difference", "name": "R2",
         "artefact_folder": "src/R2"},
    ]}
    (root / "meta.json").write_text(json.dumps(meta))
    return root
