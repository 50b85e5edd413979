"""Our batched localisation and randomisation metrics agree with Quantus where the definitions match.

Definitions: energy inside the mask = Quantus `AttributionLocalisation` (unweighted, positive attributions;
Quantus adds 1e-9 to the denominator). Pointing game = Quantus `PointingGame` (unweighted) with tolerance 0;
differences: Quantus counts a hit when *any* tied maximum is inside the mask, we take the first maximum, and
we add a pixel tolerance (default 1). Randomisation: our per-image Spearman = Quantus' `correlation_spearman`
(the similarity of its model-parameter-randomisation test; Quantus randomises layer by layer, we the whole
model at once).
"""

from __future__ import annotations

import numpy as np
import quantus
import torch
from test_cam import tiny_cnn

from medattn.explain.cam import grad_cam
from medattn.explain.localisation import energy_inside, pointing_game
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
