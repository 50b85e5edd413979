"""Our batched localisation and randomisation metrics agree with Quantus where the definitions match.

Definitions: energy inside the mask = Quantus `AttributionLocalisation` (unweighted, positive attributions;
Quantus adds 1e-9 to the denominator). Pointing game = Quantus `PointingGame` (unweighted) with tolerance 0,
tied maxima included (a hit when any maximum is inside the mask); we add a pixel tolerance (default 1) and
score a constant map NaN where Quantus scores a hit.
Top-k IoU: from Quantus `TopKIntersection` (|top-k ∩ mask| / k) with the same k. Deletion: Quantus
`PixelFlipping` with our blur baseline as its perturbation (curves equal; the AUCs differ by the start point
and the x scale, stated in the test).
Randomisation: our per-image Spearman = Quantus' `correlation_spearman`
(the similarity of its model-parameter-randomisation test; Quantus randomises layer by layer, we the whole
model at once).
"""

from __future__ import annotations

import numpy as np
import quantus
import torch
from test_cam import tiny_cnn

from medattn.explain.cam import grad_cam
from medattn.explain.faithfulness import auc, baseline_images, perturbation_curves
from medattn.explain.localisation import energy_inside, pointing_game, top_iou
from medattn.explain.randomisation import spearman


def shared_sample() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grad-CAM maps of a tiny CNN, random continuous maps, and disc-shaped masks (with one mask missed)."""
    torch.manual_seed(0)
    model, layer = tiny_cnn()
    x = torch.randn(6, 3, 16, 16)
    cams = grad_cam(model, layer, x, torch.tensor([0, 1, 2, 0, 1, 2])).numpy()
    rng = np.random.default_rng(0)
    maps = np.concatenate([cams, rng.random((6, 16, 16)).astype(np.float32)])
    yy, xx = np.mgrid[:16, :16]
    centres = rng.integers(4, 12, size=(12, 2))
    masks = np.stack([((yy - cy) ** 2 + (xx - cx) ** 2 <= 12).astype(np.uint8) for cy, cx in centres])
    return x.numpy(), maps, masks


def test_energy_and_pointing_equal_quantus():
    x, maps, masks = shared_sample()
    x = np.concatenate([x, x])
    a, s = maps[:, None], masks[:, None]
    theirs = quantus.AttributionLocalisation(disable_warnings=True).evaluate_batch(x_batch=x, a_batch=a, s_batch=s)
    ours = energy_inside(torch.from_numpy(maps), torch.from_numpy(masks)).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    hits = quantus.PointingGame(disable_warnings=True).evaluate_batch(a_batch=a, s_batch=s)
    ours = pointing_game(torch.from_numpy(maps), torch.from_numpy(masks), tolerance=0).numpy()
    assert 0 < ours.sum() < len(ours)  # both hits and misses in the sample
    np.testing.assert_array_equal(ours.astype(bool), np.asarray(hits, dtype=bool))


def test_spearman_equals_quantus_similarity():
    _, maps, _ = shared_sample()
    other = np.roll(maps, 3, axis=-1) + 0.1 * maps
    theirs = [quantus.similarity_func.correlation_spearman(maps[i].ravel(), other[i].ravel()) for i in range(len(maps))]
    ours = spearman(torch.from_numpy(maps), torch.from_numpy(other)).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def plateau_maps() -> tuple[np.ndarray, np.ndarray]:
    """Maps made of plateaus (coarse grids upsampled by nearest neighbour, as a 2x2 or 3x3 CAM) and disc masks."""
    rng = np.random.default_rng(1)
    maps = []
    for grid in (2, 3, 4, 2, 3, 4, 2, 3):
        coarse = rng.integers(0, 3, size=(grid, grid)).astype(np.float32)  # few levels: ties between cells
        coarse.flat[rng.integers(grid * grid)] = 3.0
        coarse.flat[rng.integers(grid * grid)] = 3.0  # often two tied maximal cells
        maps.append(np.kron(coarse, np.ones((12 // grid, 12 // grid), dtype=np.float32)))
    yy, xx = np.mgrid[:12, :12]
    centres = rng.integers(2, 10, size=(8, 2))
    masks = np.stack([((yy - cy) ** 2 + (xx - cx) ** 2 <= 5).astype(np.uint8) for cy, cx in centres])
    return np.stack(maps), masks


def test_pointing_game_with_tied_maxima_equals_quantus():
    maps, masks = plateau_maps()
    hits = quantus.PointingGame(disable_warnings=True).evaluate_batch(a_batch=maps[:, None], s_batch=masks[:, None])
    ours = pointing_game(torch.from_numpy(maps), torch.from_numpy(masks), tolerance=0).numpy()
    first_max = masks.reshape(8, -1)[np.arange(8), maps.reshape(8, -1).argmax(1)]
    assert (ours != first_max).any()  # the plateaus matter: the first-maximum rule would score differently
    np.testing.assert_array_equal(ours.astype(bool), np.asarray(hits, dtype=bool))


def test_plateau_hit_when_any_tied_cell_touches_the_mask_and_constant_map_is_nan():
    plateau = torch.zeros(1, 4, 4)
    plateau[0, :2, :2] = 1  # top-left cell, outside the mask
    plateau[0, 2:, 2:] = 1  # bottom-right cell, tied, on the mask
    mask = torch.zeros(1, 4, 4)
    mask[0, 3, 3] = 1
    assert pointing_game(plateau, mask, tolerance=0).item() == 1.0  # the first maximum (0, 0) would miss
    assert pointing_game(plateau[:, :, :2] * 1, mask[:, :, :2], tolerance=0).item() == 0.0
    assert np.isnan(pointing_game(torch.full((1, 4, 4), 0.3), mask, tolerance=0).item())


def test_top_k_iou_equals_quantus_top_k_intersection_turned_into_an_iou():
    """Quantus' TopKIntersection is |top-k ∩ mask| / k (a precision, not an IoU): with the same k =
    round(fraction x H x W) our IoU must equal inter / (k + |mask| - inter) with inter = Quantus' value x k.
    Continuous maps (no ties: Quantus' argsort does not keep row-major order among equal values)."""
    _, maps, masks = shared_sample()
    fraction = 0.2
    k = round(fraction * 16 * 16)
    theirs = np.asarray(quantus.TopKIntersection(k=k, disable_warnings=True).evaluate_batch(
        a_batch=maps[:, None], s_batch=masks[:, None]))
    inter = theirs * k
    expected = inter / (k + masks.reshape(len(masks), -1).sum(1) - inter)
    ours = top_iou(torch.from_numpy(maps), torch.from_numpy(masks), fraction).numpy()
    assert ((0 < ours) & (ours < 1)).sum() >= 6  # partial overlaps: the formula is exercised
    np.testing.assert_allclose(ours, expected, atol=1e-6)


def test_deletion_curve_equals_quantus_pixel_flipping_with_the_same_blur_perturbation():
    """Quantus' PixelFlipping (the deletion game) with features_in_step = C x (H x W / steps) pixel-channels
    and a perturb_func that writes our blurred image at the flipped positions. Definition differences: Quantus
    ranks (channel, pixel) elements of a map broadcast over channels (the same pixel order when pixel values
    differ), records the prediction after each step only, and integrates with dx = 1 over those `steps` points;
    our curve adds the unperturbed start and integrates over the deleted share in [0, 1]:
    ours = (quantus_auc + (p_0 + q_1) / 2) / steps."""
    torch.manual_seed(2)
    model, _ = tiny_cnn()
    side, steps = 12, 12  # Quantus asks features_in_step (3 x 144 / 12 = 36) to divide H x W (144)
    x = torch.randn(4, 3, side, side)
    maps = torch.rand(4, side, side)
    classes = torch.tensor([0, 1, 2, 1])
    base = baseline_images(x, "blur").numpy().reshape(4, -1)

    def flip_to_blur(arr: np.ndarray, indices: np.ndarray, **_) -> np.ndarray:
        out = arr.copy()
        rows = np.arange(arr.shape[0])[:, None]
        out[rows, indices] = base[rows, indices]
        return out

    metric = quantus.PixelFlipping(features_in_step=3 * side * side // steps, perturb_func=flip_to_blur,
                                   normalise=False, abs=False, disable_warnings=True, display_progressbar=False)
    a_batch = np.repeat(maps.numpy()[:, None], 3, axis=1)  # the pixel's saliency on each of its channels
    theirs = np.asarray(metric(model=model, x_batch=x.numpy(), y_batch=classes.numpy(), a_batch=a_batch,
                               softmax=True, device="cpu"))
    deletion, _ = perturbation_curves(model, x, maps, classes, steps=steps, baseline="blur")
    assert theirs.shape == (4, steps) and np.ptp(theirs, axis=1).min() > 1e-3  # the curves move
    np.testing.assert_allclose(deletion[:, 1:].numpy(), theirs, atol=1e-5)
    quantus_auc = np.trapezoid(theirs, dx=1, axis=1)  # Quantus calculate_auc (np.trapz, dx=1)
    expected = (quantus_auc + (deletion[:, 0].numpy() + theirs[:, 0]) / 2) / steps
    np.testing.assert_allclose(auc(deletion).numpy(), expected, atol=1e-5)
