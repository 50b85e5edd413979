"""Metrics against scikit-learn and hand-computed cases."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score

from medattn.train.metrics import classification_metrics, expected_calibration_error


def random_case(n: int, k: int, seed: int):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return labels, probs


def test_metrics_equal_sklearn_binary_and_multiclass():
    for k in (2, 7):
        labels, probs = random_case(500, k, seed=k)
        m = classification_metrics(labels, probs)
        preds = probs.argmax(1)
        assert np.isclose(m["balanced_accuracy"], balanced_accuracy_score(labels, preds))
        assert np.isclose(m["accuracy"], accuracy_score(labels, preds))
        assert np.isclose(m["macro_f1"], f1_score(labels, preds, average="macro"))
        expected_auc = (roc_auc_score(labels, probs[:, 1]) if k == 2
                        else roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
        assert np.isclose(m["auc"], expected_auc)


def test_ece_hand_computed():
    # Two bins used: confidence 0.9 (2 samples, 1 correct) and 0.6 (2 samples, 2 correct).
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    labels = np.array([0, 1, 1, 1])
    expected = 0.5 * abs(0.5 - 0.9) + 0.5 * abs(1.0 - 0.6)
    assert np.isclose(expected_calibration_error(labels, probs), expected)


def test_perfectly_calibrated_predictions_have_small_ece():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, 200_000)
    labels = (rng.uniform(size=conf.size) > conf).astype(int)  # class 0 is right with probability conf
    probs = np.stack([conf, 1 - conf], 1)
    assert expected_calibration_error(labels, probs) < 0.01
