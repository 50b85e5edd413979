"""Localisation metrics on hand-built maps and masks, with their uniform-map baselines."""

from __future__ import annotations

import torch

from medattn.explain.localisation import energy_inside, localisation_scores, pointing_game, top_iou, uniform_baselines


def square_mask(size: int = 16, lo: int = 4, hi: int = 8) -> torch.Tensor:
    """(1, size, size) mask with a filled square [lo, hi)."""
    mask = torch.zeros(1, size, size)
    mask[:, lo:hi, lo:hi] = 1
    return mask


def test_map_equal_to_mask_scores_one_and_map_outside_scores_zero():
    mask = square_mask()
    assert energy_inside(mask, mask).item() == 1.0
    assert energy_inside(1 - mask, mask).item() == 0.0
    assert pointing_game(mask, mask, tolerance=0).item() == 1.0
    outside = torch.zeros(1, 16, 16)
    outside[0, 15, 15] = 1
    assert pointing_game(outside, mask, tolerance=0).item() == 0.0
    assert top_iou(mask, mask, fraction=16 / 256).item() == 1.0
    assert top_iou(1 - mask, mask, fraction=16 / 256).item() == 0.0


def test_pointing_tolerance_counts_a_peak_next_to_the_mask():
    mask = square_mask()
    near = torch.zeros(1, 16, 16)
    near[0, 8, 8] = 1  # one pixel diagonal to the square's corner (7, 7)
    assert pointing_game(near, mask, tolerance=0).item() == 0.0
    assert pointing_game(near, mask, tolerance=1).item() == 1.0


def test_uniform_map_scores_its_baseline_and_baselines_are_exact():
    mask = square_mask()
    uniform = torch.ones(1, 16, 16)
    base = uniform_baselines(mask, tolerance=1, fraction=0.25)
    assert abs(energy_inside(uniform, mask).item() - 16 / 256) < 1e-7
    assert abs(base["energy"].item() - 16 / 256) < 1e-7
    assert abs(base["pointing"].item() - 36 / 256) < 1e-7  # the 4x4 square dilated by 1 is 6x6
    k, a = 0.25, 16 / 256
    assert abs(base["iou"].item() - k * a / (k + a - k * a)) < 1e-7


def test_batched_scores_equal_one_by_one_and_all_zero_map_is_nan():
    torch.manual_seed(0)
    maps, masks = torch.rand(5, 12, 12), (torch.rand(5, 12, 12) > 0.7).float()
    maps[4] = 0
    batched = localisation_scores(maps, masks)
    for i in range(4):
        single = localisation_scores(maps[i:i + 1], masks[i:i + 1])
        for name, value in single.items():
            assert torch.allclose(batched[name][i:i + 1], value)
    assert torch.isnan(batched["energy"][4])
