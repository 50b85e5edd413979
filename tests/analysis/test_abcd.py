"""ABCD features against analytic shapes and scikit-image's region properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.draw import disk, ellipse, polygon
from skimage.measure import regionprops

from medattn.analysis.abcd import ABCD_FEATURES, COLOURS, abcd_features

S = 64


def _disc(r: float = 20.0) -> np.ndarray:
    m = np.zeros((S, S), np.uint8)
    m[disk((S / 2, S / 2), r, shape=(S, S))] = 1
    return m


def _ellipse(a: float, b: float, angle: float) -> np.ndarray:
    m = np.zeros((S, S), np.uint8)
    m[ellipse(S / 2, S / 2, a, b, shape=(S, S), rotation=angle)] = 1
    return m


def _lopsided() -> np.ndarray:
    """A right triangle: symmetric about neither principal axis."""
    m = np.zeros((S, S), np.uint8)
    m[polygon([10, 54, 54], [10, 10, 54], shape=(S, S))] = 1
    return m


def test_disc_is_symmetric_compact_and_its_diameter_is_2r():
    table = abcd_features(np.stack([_disc(20)]))
    assert table["asymmetry"][0] < 0.03
    # rasterised disc r = 20: 1245 pixels, Crofton perimeter 124.572 (skimage), compactness 0.9919
    assert table["border_compactness"][0] == pytest.approx(0.9919, abs=0.001)
    assert table["diameter_px"][0] == pytest.approx(40, abs=1.5)


def test_rotated_ellipse_is_symmetric_about_its_principal_axes():
    table = abcd_features(np.stack([_ellipse(22, 10, a) for a in (0.0, 0.4, 1.1)]))
    assert (table["asymmetry"] < 0.05).all()
    assert np.allclose(table["diameter_px"], 44, atol=1.5)


def test_lopsided_shape_is_more_asymmetric_than_the_ellipse_and_a_ragged_border_less_compact():
    rng = np.random.default_rng(0)
    theta = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    radius = 18 + 4 * np.sin(13 * theta + rng.uniform(0, 6))
    ragged = np.zeros((S, S), np.uint8)
    ragged[polygon(S / 2 + radius * np.sin(theta), S / 2 + radius * np.cos(theta), shape=(S, S))] = 1
    table = abcd_features(np.stack([_ellipse(22, 10, 0.3), _lopsided(), ragged, _disc(18)]))
    assert table["asymmetry"][1] > 0.15 > table["asymmetry"][0]
    assert table["border_compactness"][2] > 1.3 > table["border_compactness"][3]


def test_shape_features_agree_with_skimage_regionprops():
    shapes = [_disc(20), _ellipse(22, 10, 0.4), _lopsided(), _ellipse(15, 25, 1.0)]
    table = abcd_features(np.stack(shapes))
    for i, m in enumerate(shapes):
        props = regionprops(m)[0]
        assert table["diameter_px"][i] == pytest.approx(props.feret_diameter_max, abs=1.5)
        ours = table["border_compactness"][i] * 4 * math.pi * props.area
        assert math.sqrt(ours) == pytest.approx(props.perimeter_crofton, rel=1e-6)  # measured: within 1e-7


def test_colour_count_counts_the_reference_colours_present():
    m = _disc(20)
    img = np.zeros((3, S, S), np.uint8) + np.array([230, 200, 180], np.uint8)[:, None, None]
    two = img.copy()
    two[:, m > 0] = (np.array(COLOURS["light_brown"]) * 255).astype(np.uint8)[:, None]
    two[:, :S // 2][:, m[:S // 2] > 0] = 0  # black upper half
    one = img.copy()
    one[:, m > 0] = (np.array(COLOURS["blue_grey"]) * 255).astype(np.uint8)[:, None]
    table = abcd_features(np.stack([m, m]), np.stack([two, one]))
    assert table["colour_count"].tolist() == [2.0, 1.0]


def test_empty_mask_gives_nan_and_chunks_do_not_change_results():
    rng = np.random.default_rng(1)
    masks = np.stack([_ellipse(rng.uniform(8, 20), rng.uniform(8, 20), rng.uniform(0, 3)) for _ in range(9)])
    masks[4] = 0
    images = rng.integers(0, 256, (9, 3, S, S), dtype=np.uint8)
    whole = abcd_features(masks, images)
    chunked = abcd_features(torch.from_numpy(masks), torch.from_numpy(images), chunk=2)
    assert list(whole.columns) == list(ABCD_FEATURES)
    assert whole.iloc[4].isna().all() and whole.drop(index=4).notna().all().all()
    assert np.allclose(whole.to_numpy(), chunked.to_numpy(), equal_nan=True)


def test_touches_edge_flags_masks_cut_off_by_the_frame():
    from medattn.analysis.abcd import touches_edge

    masks = np.zeros((4, 10, 12), np.uint8)
    masks[0, 3:6, 3:6] = 1  # inside
    masks[1, 0, 5] = 1  # top row
    masks[2, 4:7, 11] = 1  # right column
    assert touches_edge(masks).tolist() == [False, True, True, False]  # an empty mask touches nothing
