"""Shortcut probes: artefact insertion with derm-synth's renderer, removal by inpainting, effect sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score

from medattn.analysis.probes import (
    balanced_accuracy,
    insert_artefact,
    parse_artefacts,
    probe_effects,
    remove_artefact,
)
from medattn.data.synthetic import generate_derm_synth
from medattn.errors import DataError


def test_insertion_draws_only_in_the_chosen_corner_with_the_chosen_colour():
    clean = generate_derm_synth(n=6, size=64, seed=1, artefacts=()).images
    patched = insert_artefact(clean, "patch", seed=0, position=0, colour=(10, 200, 30))
    changed = (patched != clean).any(1)
    assert changed.any(-1).any(-1).all()
    assert not changed[:, 32:].any() and not changed[:, :, 32:].any()  # top-left corner only
    drawn = patched.permute(0, 2, 3, 1)[changed]
    assert (drawn == torch.tensor([10, 200, 30], dtype=torch.uint8)).all()
    ruled = insert_artefact(clean, "ruler", seed=0, position=1)
    assert not ((ruled != clean).any(1)[:, :48]).any()  # bottom edge only
    inked = insert_artefact(clean, "ink", seed=0, position=3, colour=(0, 0, 255))
    diff = (inked.float() - clean.float())[:, :, 40:, 40:]
    assert (inked != clean).any(1)[:, 40:, 40:].any() and diff[:, 2].sum() > 0 > diff[:, 0].sum()


def test_insertion_matches_what_derm_synth_draws_for_the_same_parameters():
    """Default placement: the drawn pixels are a patch-sized square, like derm-synth's own patches."""
    clean = generate_derm_synth(n=20, size=64, seed=2, artefacts=()).images
    patched = insert_artefact(clean, "patch", seed=5)
    area = (patched != clean).any(1).sum((1, 2)).float()
    side = area.sqrt()
    assert ((side > 0.12 * 64) & (side < 0.2 * 64)).all()


def test_removal_recovers_the_image_under_a_derm_synth_patch():
    with_patch = generate_derm_synth(n=12, size=48, seed=3, shortcut_corr=1.0, artefacts=("patch",))
    without = generate_derm_synth(n=12, size=48, seed=3, shortcut_corr=1.0, artefacts=())
    mask = with_patch.artefact_masks["patch"]
    has = (mask.flatten(1) > 0).any(1)
    filled = remove_artefact(with_patch.images[has], mask[has])
    region = mask[has][:, None].expand_as(filled) > 0
    err_before = (with_patch.images[has].float() - without.images[has].float()).abs()[region].mean()
    err_after = (filled.float() - without.images[has].float()).abs()[region].mean()
    assert err_after < 0.25 * err_before
    assert (filled[~region] == with_patch.images[has][~region]).all()


def test_harmonic_fill_reproduces_a_linear_ramp():
    ramp = torch.linspace(0, 200, 32).expand(1, 3, 32, 32).round().to(torch.uint8).contiguous()
    mask = torch.zeros(1, 32, 32, dtype=torch.uint8)
    mask[:, 10:20, 12:22] = 1
    filled = remove_artefact(ramp, mask, iterations=400)
    assert (filled.float() - ramp.float()).abs().max() <= 2


def test_balanced_accuracy_matches_sklearn_per_row():
    rng = np.random.default_rng(0)
    label = rng.integers(0, 3, (5, 80))
    pred = rng.integers(0, 3, (5, 80))
    ours = balanced_accuracy(pred, label, 3)
    assert np.allclose(ours, [balanced_accuracy_score(label[i], pred[i]) for i in range(5)])


def test_probe_effects_on_planted_probabilities():
    before = np.tile([[0.8, 0.2]], (100, 1))
    after = before.copy()
    after[:30] = [0.3, 0.7]  # 30 of 100 predictions flip to class 1, P(1) rises by 0.5 there
    label = np.r_[np.ones(30, int), np.zeros(70, int)]
    out = probe_effects(before, after, label, positive=1, bootstrap=500, seed=0)
    assert out["flip_rate"] == pytest.approx(0.3) and out["delta_positive_prob"] == pytest.approx(0.15)
    assert out["delta_balanced_accuracy"] == pytest.approx(0.5)
    assert out["flip_rate_low"] < 0.3 < out["flip_rate_high"]
    assert out["delta_balanced_accuracy_low"] <= 0.5 <= out["delta_balanced_accuracy_high"]


def test_unknown_artefact_names_the_valid_ones():
    assert parse_artefacts("patch, ink") == ("patch", "ink")
    with pytest.raises(DataError, match="unknown artefact 'sticker'; valid names: patch, ruler, ink"):
        parse_artefacts("patch,sticker")
