"""Localisation edge cases worked by hand: maps summing to less than 1, a one-pixel top region, options passed
through `localisation_scores` (survivors of `make mutate` on explain/localisation.py)."""

from __future__ import annotations

import pytest
import torch

from medattn.explain.localisation import energy_inside, localisation_scores, top_iou, uniform_baselines


def one_pixel(row: int, col: int, value: float = 1.0, size: int = 4) -> torch.Tensor:
    """(1, size, size) zeros with `value` at (row, col)."""
    image = torch.zeros(1, size, size)
    image[0, row, col] = value
    return image


def test_energy_share_of_a_map_whose_saliency_sums_below_one():
    saliency = one_pixel(1, 1, 0.25) + one_pixel(3, 3, 0.25)  # total 0.5, half of it on the mask
    assert energy_inside(saliency, one_pixel(1, 1)).item() == pytest.approx(0.5)


def test_top_region_has_at_least_one_pixel():
    # round(0.01 x 16) = 0 pixels, raised to 1: the peak alone, which is the one-pixel mask -> IoU 1
    mask = one_pixel(2, 2)
    saliency = mask + 0.1 * one_pixel(0, 0)
    assert top_iou(saliency, mask, fraction=0.01).item() == 1.0
    # a uniform map's expected top-1 region: k = a = 1/16, inter = 1/256, IoU = 1 / (16 + 16 - 1)
    assert uniform_baselines(mask, tolerance=0, fraction=0.01)["iou"].item() == pytest.approx(1 / 31)


def test_scores_use_the_given_tolerance_and_fraction_and_name_every_metric():
    masks = torch.cat([one_pixel(1, 1), one_pixel(1, 1)])
    maps = torch.cat([one_pixel(1, 1), one_pixel(2, 2)])  # on the mask; one pixel diagonal to it
    scores = localisation_scores(maps, masks, tolerance=0, fraction=0.01)
    assert set(scores) == {"energy", "pointing", "iou", "energy_baseline", "pointing_baseline", "iou_baseline"}
    assert scores["energy"].tolist() == [1.0, 0.0]
    assert scores["pointing"].tolist() == [1.0, 0.0]  # tolerance 1 would count the diagonal peak
    assert scores["iou"].tolist() == [1.0, 0.0]  # the default fraction (0.2 -> 3 pixels) would give 1/3
    assert scores["energy_baseline"].tolist() == pytest.approx([1 / 16, 1 / 16])
    assert scores["pointing_baseline"].tolist() == pytest.approx([1 / 16, 1 / 16])  # tolerance 1: 9/16
    assert scores["iou_baseline"].tolist() == pytest.approx([1 / 31, 1 / 31])  # fraction 0.2: 3/61
