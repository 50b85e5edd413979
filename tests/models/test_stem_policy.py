"""The stem policy as docs/performance.md states it ("Stem policy"): `s2` below 64 px, the standard stem from 64 px.

The expected stems are written out from that table, not read from `STEM_POLICY`, so a change of the
policy in the code alone fails here.
"""

from __future__ import annotations

import pytest
import torch

from medattn.models.build import build_model
from medattn.models.stem import default_stem, resolve_stem


@pytest.mark.parametrize(("size", "stem"), [(28, "s2"), (32, "s2"), (48, "s2"), (63, "s2"),
                                            (64, "standard"), (96, "standard"), (128, "standard"),
                                            (224, "standard")])
def test_default_stem_is_s2_below_64_px_and_standard_from_64_px(size, stem):
    assert default_stem(size) == stem
    assert resolve_stem(size) == stem


def _stem_stride(model, size: int) -> int:
    """How much a ResNet's stem (conv1, bn1, act1, maxpool) shrinks a `size` px image."""
    stem = torch.nn.Sequential(model.conv1, model.bn1, model.act1, model.maxpool).eval()
    return size // stem(torch.zeros(1, 3, size, size)).shape[-1]


def test_resnet_stem_stride_is_2_below_64_px_and_4_from_64_px():
    assert _stem_stride(build_model("resnet18", image_size=32), 32) == 2
    assert _stem_stride(build_model("resnet18", image_size=64), 64) == 4
