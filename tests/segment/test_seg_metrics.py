"""Per-image Dice, IoU, HD95 and ASD: hand-computed small masks (empty ones included) and MONAI on random masks."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from medattn.segment.metrics import foreground_ece, segmentation_scores


def _masks(*boxes, size: int = 6) -> np.ndarray:
    """One (size x size) mask per box (r0, r1, c0, c1); None gives an empty mask."""
    out = np.zeros((len(boxes), size, size), dtype=bool)
    for i, box in enumerate(boxes):
        if box is not None:
            r0, r1, c0, c1 = box
            out[i, r0:r1, c0:c1] = True
    return out


def test_shifted_square_by_hand():
    # truth: rows 1-2, cols 1-2; prediction: rows 1-2, cols 2-3. Overlap 2 of 4 + 4 pixels.
    # Every pixel of a 2x2 square is surface; pred->truth distances 0,0,1,1 and truth->pred 1,1,0,0.
    s = segmentation_scores(_masks((1, 3, 2, 4)), _masks((1, 3, 1, 3)))
    assert s["dice"][0] == pytest.approx(2 * 2 / 8)
    assert s["iou"][0] == pytest.approx(2 / 6)
    assert s["hd95"][0] == pytest.approx(1.0)  # 95th percentile of [0, 0, 1, 1]: 1
    assert s["asd"][0] == pytest.approx(4 / 8)


def test_single_pixels_three_apart_and_identical_masks():
    s = segmentation_scores(_masks((0, 1, 0, 1), (2, 4, 2, 4)), _masks((3, 4, 0, 1), (2, 4, 2, 4)))
    assert s["dice"].tolist() == [0.0, 1.0] and s["iou"].tolist() == [0.0, 1.0]
    assert s["hd95"].tolist() == pytest.approx([3.0, 0.0]) and s["asd"].tolist() == pytest.approx([3.0, 0.0])


def test_percentile_interpolates_between_sorted_distances():
    # truth: column 0 (6 pixels); prediction: column 0 plus a pixel at (0, 5), 5 away from the truth.
    truth = _masks((0, 6, 0, 1))
    pred = truth.copy()
    pred[0, 0, 5] = True
    s = segmentation_scores(pred, truth)
    # pred->truth: six 0s and one 5 -> q95 at position 0.95 * 6 = 5.7 between 0 and 5: 3.5; truth->pred all 0
    assert s["hd95"][0] == pytest.approx(0.7 * 5)
    assert s["asd"][0] == pytest.approx(5 / 13)


def test_empty_masks_score_as_stated():
    diagonal = math.hypot(6, 6)
    s = segmentation_scores(_masks(None, None, (1, 3, 1, 3)), _masks(None, (1, 3, 1, 3), None))
    assert s["dice"].tolist() == [1.0, 0.0, 0.0] and s["iou"].tolist() == [1.0, 0.0, 0.0]
    assert s["hd95"].tolist() == pytest.approx([0.0, diagonal, diagonal])
    assert s["asd"].tolist() == pytest.approx([0.0, diagonal, diagonal])


def test_a_model_predicting_nothing_scores_the_share_of_empty_truths():
    truth = _masks(None, (1, 3, 1, 3), (0, 6, 0, 6), (2, 3, 2, 3))
    s = segmentation_scores(np.zeros_like(truth), truth)
    assert s["dice"].mean() == pytest.approx(0.25)
    assert s["hd95"].mean() == pytest.approx(0.75 * math.hypot(6, 6))
    assert s["area"].tolist() == pytest.approx([0, 4 / 36, 1, 1 / 36]) and s["pred_area"].sum() == 0


def test_equals_monai_on_random_masks():
    from monai.metrics import DiceMetric, HausdorffDistanceMetric, MeanIoU, SurfaceDistanceMetric

    rng = np.random.default_rng(0)
    truth = gaussian_filter(rng.random((24, 32, 32)), (0, 3, 3)) > 0.5
    pred = gaussian_filter(rng.random((24, 32, 32)), (0, 3, 3)) > 0.5
    pred[0] = truth[0] = True  # full masks: surface only on the image border
    keep = truth.any((1, 2)) & pred.any((1, 2))
    ours = segmentation_scores(pred, truth)
    p, t = torch.from_numpy(pred)[:, None].float(), torch.from_numpy(truth)[:, None].float()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = {"dice": DiceMetric(reduction="none", ignore_empty=False)(p, t),
               "iou": MeanIoU(reduction="none", ignore_empty=False)(p, t),
               "hd95": HausdorffDistanceMetric(percentile=95, reduction="none")(p, t),
               "asd": SurfaceDistanceMetric(symmetric=True, reduction="none")(p, t)}
    for name, value in ref.items():
        np.testing.assert_allclose(ours[name][keep], value[:, 0].numpy()[keep], rtol=1e-5, atol=1e-5, err_msg=name)


def test_foreground_ece_by_hand():
    # bins of width 1/15: p=0.9 (y 1, 0) -> |1.8 - 1|; p=0.1 (y 0, 0) -> |0.2 - 0|; total 1.0 over 4 pixels
    assert foreground_ece(np.array([0.9, 0.9, 0.1, 0.1]), np.array([1, 0, 0, 0])) == pytest.approx(1.0 / 4)
