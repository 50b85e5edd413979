"""Shortcut-probe wiring: flips in every direction count, and the probe inserts only into images that lack the
artefact and removes it only where the concept table says it is present (Bissoto et al., CVPR-W 2019)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medattn.analysis.probes import ProbeOptions, probe_effects, probe_run
from medattn.data.synthetic import generate_derm_synth


def test_flips_away_from_the_positive_class_count_as_flips():
    # 100 images: 20 predicted positive (P(1) = 0.9), 80 negative (P(1) = 0.2). The probe flips 15 positives to
    # negative (P(1) 0.9 -> 0.3) and 10 negatives to positive (P(1) 0.2 -> 0.6).
    before = np.r_[np.tile([0.1, 0.9], (20, 1)), np.tile([0.8, 0.2], (80, 1))]
    after = before.copy()
    after[:15] = [0.7, 0.3]
    after[20:30] = [0.4, 0.6]
    label = np.r_[np.ones(20, int), np.zeros(80, int)]
    out = probe_effects(before, after, label, positive=1, bootstrap=200, seed=0)
    assert out["flip_rate"] == pytest.approx(0.25)
    assert out["delta_positive_prob"] == pytest.approx((15 * -0.6 + 10 * 0.4) / 100)
    # recall of class 1 falls 1 -> 5/20, of class 0 falls 1 -> 70/80
    assert out["delta_balanced_accuracy"] == pytest.approx((5 / 20 + 70 / 80) / 2 - 1)
    only_down = probe_effects(before, np.r_[after[:20], before[20:]], label, positive=1, bootstrap=0, seed=0)
    assert only_down["flip_rate"] == pytest.approx(0.15)


def test_a_flip_between_two_non_positive_classes_counts():
    before = np.tile([0.6, 0.1, 0.3], (10, 1))  # class 0
    after = before.copy()
    after[:4] = [0.2, 0.1, 0.7]  # 0 -> 2, the positive class (1) untouched
    out = probe_effects(before, after, np.zeros(10, int), positive=1, bootstrap=0, seed=0)
    assert out["flip_rate"] == pytest.approx(0.4) and out["delta_positive_prob"] == pytest.approx(0.0)


def test_insertion_uses_the_test_images_without_the_artefact_and_removal_those_with_it():
    data = generate_derm_synth(n=120, size=32, seed=0, artefacts=("patch", "ink"))
    test = data.split == "test"
    calls: list[torch.Tensor] = []

    def model_probs(images: torch.Tensor) -> np.ndarray:
        calls.append(images.clone())
        return np.tile([0.5, 0.5], (len(images), 1))

    rows = probe_run(model_probs, data, ProbeOptions(artefacts=("patch",), bootstrap=0), seed=0)
    lacking = np.flatnonzero(test & (data.concepts["patch"].to_numpy() == 0))
    having = np.flatnonzero(test & (data.concepts["patch"].to_numpy() == 1))
    assert len(lacking) == 10 and len(having) == 8  # derm-synth n=120 seed 0: 18 test images, 8 with a patch
    assert [(r["probe"], r["n"]) for r in rows] == [("insert", 10), ("remove", 8), ("sham", 10)]
    clean, inserted, dirty, removed, sham = calls
    assert torch.equal(clean, data.images[lacking]) and torch.equal(dirty, data.images[having])
    assert (inserted != clean).flatten(1).any(1).all()  # a patch drawn into every image that lacked one
    outside = (data.artefact_masks["patch"][having] == 0)[:, None].expand_as(dirty)
    assert torch.equal(removed[outside], dirty[outside])  # removal touches only the patch's own pixels
    assert (removed != dirty).flatten(1).any(1).all()
    # the sham arm inpaints patch-shaped regions of the clean images: pixels change, and only under some patch mask
    changed = (sham != clean).any(1)
    assert changed.flatten(1).any(1).float().mean() > 0.5
    assert changed.sum() <= 10 * int(data.artefact_masks["patch"][having].flatten(1).sum(1).max())


def test_zero_flips_in_60_images_have_an_exact_upper_bound_above_005():
    from scipy.stats import beta

    probs = np.tile([0.3, 0.7], (60, 1))
    out = probe_effects(probs, probs.copy(), np.ones(60, int), positive=1, bootstrap=0, seed=0)
    assert out["flip_rate"] == 0 and out["flip_rate_low"] == 0
    assert out["flip_rate_high"] == pytest.approx(1 - 0.025 ** (1 / 60)) and out["flip_rate_high"] >= 0.05
    three = probe_effects(probs, np.r_[np.tile([0.9, 0.1], (3, 1)), probs[3:]], np.ones(60, int), 1, 0, 0)
    assert (three["flip_rate_low"], three["flip_rate_high"]) == pytest.approx((beta.ppf(0.025, 3, 58),
                                                                              beta.ppf(0.975, 4, 57)))


def test_the_run_seed_drives_the_artefact_placement():
    data = generate_derm_synth(n=120, size=32, seed=0, artefacts=("patch",))
    drawn: list[torch.Tensor] = []

    def model_probs(images: torch.Tensor) -> np.ndarray:
        drawn.append(images.clone())
        return np.tile([0.5, 0.5], (len(images), 1))

    opts = ProbeOptions(artefacts=("patch",), bootstrap=0, removal=False)
    probe_run(model_probs, data, opts, seed=0)
    probe_run(model_probs, data, opts, seed=0)
    probe_run(model_probs, data, opts, seed=1)
    assert torch.equal(drawn[1], drawn[3]) and not torch.equal(drawn[1], drawn[5])


def test_two_level_bootstrap_widens_with_seed_spread_and_is_written_on_every_seeds_row():
    import pandas as pd

    from medattn.analysis.probes import seed_intervals, two_level_interval

    rng = np.random.default_rng(0)
    same = np.tile((rng.random(40) < 0.3).astype(float), (3, 1))  # three seeds flipping the same images
    spread = same.copy()
    spread[0], spread[2] = 0.0, 1.0  # seeds that disagree: flip nothing / everything
    low, high = two_level_interval(same, 2000, 0)
    assert low <= same.mean() <= high and high - low < 0.35
    wide_low, wide_high = two_level_interval(spread, 2000, 0)
    assert wide_high - wide_low > 1.5 * (high - low)
    assert np.isnan(two_level_interval(same[:1], 100, 0)[0])  # one seed: no interval over seeds
    table = pd.DataFrame({"dataset": "d", "model": "m", "probe": "insert", "artefact": "patch", "seed": [0, 1, 2]})
    arrays = [{"_flips": row, "_delta": row / 10} for row in spread]
    out = seed_intervals(table, arrays, 2000, 0)
    assert out["flip_rate_seeds_low"].nunique() == 1 and out["flip_rate_seeds_low"].iloc[0] == wide_low
    assert out["delta_positive_prob_seeds_high"].iloc[0] == pytest.approx(two_level_interval(spread / 10, 2000, 0)[1])
