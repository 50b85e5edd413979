"""Paired bootstrap of the balanced-accuracy difference over test samples."""


import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score

from medattn.errors import DataError
from medattn.stats.bootstrap import paired_bootstrap, stratified_bootstrap_indices


def predictions(labels: np.ndarray, predicted: np.ndarray, k: int, seed: int = 0) -> pd.DataFrame:
    """Return a prediction table whose argmax is ``predicted``."""
    rng = np.random.default_rng(seed)
    probs = rng.uniform(0, 0.5, size=(len(labels), k))
    probs[np.arange(len(labels)), predicted] = 1.0
    probs /= probs.sum(axis=1, keepdims=True)
    return pd.DataFrame(
        {"index": np.arange(len(labels)), "label": labels, **{f"prob_{j}": probs[:, j] for j in range(k)}}
    )


def noisy(labels: np.ndarray, accuracy: float, k: int, rng: np.random.Generator) -> np.ndarray:
    """Return predictions that are right with probability ``accuracy`` and otherwise a random other class."""
    wrong = rng.random(len(labels)) > accuracy
    out = labels.copy()
    out[wrong] = (labels[wrong] + rng.integers(1, k, wrong.sum())) % k
    return out


def test_identical_tables_give_a_degenerate_interval_at_zero():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 500)
    p = predictions(labels, noisy(labels, 0.7, 3, rng), 3)
    res = paired_bootstrap(p, p.copy(), n_boot=500)
    assert res.observed == 0.0
    assert res.ci_low == res.ci_high == 0.0
    assert np.all(res.samples == 0.0)


def test_planted_difference_is_detected_and_observed_matches_sklearn():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 2000)
    good, bad = noisy(labels, 0.85, 4, rng), noisy(labels, 0.70, 4, rng)
    res = paired_bootstrap(predictions(labels, good, 4), predictions(labels, bad, 4), n_boot=1000, seed=3)
    expected = balanced_accuracy_score(labels, good) - balanced_accuracy_score(labels, bad)
    assert res.observed == pytest.approx(expected)
    assert 0 < res.ci_low < expected < res.ci_high
    assert res.samples.shape == (1000,)


def test_matches_a_slow_loop_with_the_same_indices():
    rng = np.random.default_rng(2)
    n, k, n_boot = 40, 3, 60
    labels = rng.integers(0, k, n)
    labels[:3] = [0, 1, 2]
    pred_a, pred_b = noisy(labels, 0.6, k, rng), noisy(labels, 0.5, k, rng)
    res = paired_bootstrap(
        predictions(labels, pred_a, k), predictions(labels, pred_b, k), n_boot=n_boot, seed=11, chunk_size=7
    )
    slow = []
    for chunk in stratified_bootstrap_indices(labels, n_boot, seed=11, chunk_size=7):
        for idx in chunk:
            assert np.array_equal(np.bincount(labels[idx], minlength=k), np.bincount(labels, minlength=k))
            slow.append(
                balanced_accuracy_score(labels[idx], pred_a[idx]) - balanced_accuracy_score(labels[idx], pred_b[idx])
            )
    assert res.samples == pytest.approx(np.array(slow))
    assert (res.ci_low, res.ci_high) == pytest.approx(tuple(np.quantile(slow, [0.025, 0.975])))


def test_tables_are_aligned_by_index_not_row_order():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 300)
    a = predictions(labels, noisy(labels, 0.8, 2, rng), 2)
    b = predictions(labels, noisy(labels, 0.7, 2, rng), 2)
    shuffled = b.sample(frac=1.0, random_state=0)
    assert paired_bootstrap(a, shuffled, n_boot=200).samples == pytest.approx(
        paired_bootstrap(a, b, n_boot=200).samples
    )


def test_inconsistent_tables_raise_user_errors():
    labels = np.array([0, 1, 1, 0])
    a = predictions(labels, labels, 2)
    with pytest.raises(DataError, match="different labels"):
        paired_bootstrap(a, a.assign(label=[1, 1, 1, 0]))
    with pytest.raises(DataError, match="prob_0"):
        paired_bootstrap(a, a.drop(columns=["prob_1"]).rename(columns={"prob_0": "p0"}))
    with pytest.raises(DataError, match="outside"):
        paired_bootstrap(a.assign(label=[0, 2, 1, 0]), a)
