"""Report figures render to files; the Pareto mask is right on a hand-made example."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from medattn.errors import DataError
from medattn.report.figures import (
    accuracy_cost_figure,
    cd_diagram,
    confusion_matrix_figure,
    pareto_front,
    per_class_recall_figure,
    save_figure,
    training_curves_figure,
)
from medattn.stats.ranking import critical_difference, friedman_test, nemenyi_test

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def is_png(path) -> bool:
    """Return True when ``path`` is a non-trivial PNG file."""
    data = path.read_bytes()
    return data[:8] == PNG_MAGIC and len(data) > 2000


def test_pareto_front_hand_made():
    df = pd.DataFrame(
        {
            "model": ["A", "B", "C", "D", "E", "F", "G"],
            "params": [1.0, 2.0, 3.0, 4.0, 2.0, 5.0, np.nan],
            "acc": [0.70, 0.80, 0.75, 0.90, 0.80, 0.90, 0.99],
        }
    )
    # C is beaten by B (cheaper, better); F by D (cheaper, equal); B and E tie, neither beats the other;
    # G has no cost and is never on the front
    assert pareto_front(df, "params", "acc").tolist() == [True, True, False, True, True, False, False]


def test_pareto_front_single_and_missing_column():
    assert pareto_front(pd.DataFrame({"c": [3.0], "a": [0.5]}), "c", "a").tolist() == [True]
    with pytest.raises(DataError, match="flops"):
        pareto_front(pd.DataFrame({"c": [3.0], "a": [0.5]}), "flops", "a")


def prediction_table(k: int = 4, n: int = 200, seed: int = 0) -> pd.DataFrame:
    """Return a prediction table that is right about 70% of the time."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    probs = rng.dirichlet(np.ones(k), n)
    probs[np.arange(n), labels] += rng.random(n) > 0.3
    probs /= probs.sum(axis=1, keepdims=True)
    return pd.DataFrame(
        {"index": np.arange(n), "label": labels, **{f"prob_{j}": probs[:, j] for j in range(k)}}
    )


def test_cd_diagram(tmp_path):
    rng = np.random.default_rng(0)
    scores = pd.DataFrame(rng.normal(size=(8, 5)) + np.arange(5), columns=[f"m{i}" for i in range(5)])
    fr = friedman_test(scores)
    fig = cd_diagram(
        fr.average_ranks,
        nemenyi_test(scores),
        critical_difference=critical_difference(5, 8),
        path=tmp_path / "cd.png",
    )
    assert isinstance(fig, Figure)
    assert is_png(tmp_path / "cd.png")
    save_figure(fig, tmp_path / "cd.svg")
    assert (tmp_path / "cd.svg").read_text().lstrip().startswith("<?xml")


def test_accuracy_cost_figure(tmp_path):
    summary = pd.DataFrame(
        {
            "model": ["resnet18", "resnet18+se", "resnet50", "vit_small"],
            "attention": ["none", "se", "none", "none"],
            "is_baseline": [False, False, False, True],
            "params": [11.2e6, 11.3e6, 23.5e6, 22.0e6],
            "mean": [0.80, 0.82, 0.815, 0.79],
            "std": [0.01] * 4,
        }
    )
    fig = accuracy_cost_figure(summary, path=tmp_path / "pareto.png")
    assert is_png(tmp_path / "pareto.png")
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert texts == set(summary["model"])
    with pytest.raises(DataError, match="one row per model"):
        accuracy_cost_figure(pd.concat([summary, summary]))


def test_recall_confusion_and_curves(tmp_path):
    preds = prediction_table()
    per_class_recall_figure(
        {"a": preds, "b": prediction_table(seed=1)}, class_names=list("wxyz"), path=tmp_path / "recall.png"
    )
    confusion_matrix_figure(preds, path=tmp_path / "cm.png")
    history = pd.DataFrame(
        [
            (m, s, e, 1 / (e + 1), 0.5 + 0.03 * e)
            for m in ("resnet18", "resnet18+se")
            for s in range(2)
            for e in range(6)
        ],
        columns=["model", "seed", "epoch", "train_loss", "val_balanced_accuracy"],
    )
    fig = training_curves_figure(history, path=tmp_path / "curves.png")
    assert len(fig.axes[0].lines) == 4
    for name in ("recall.png", "cm.png", "curves.png"):
        assert is_png(tmp_path / name)
    with pytest.raises(DataError, match="class_names"):
        confusion_matrix_figure(preds, class_names=["a"])
    with pytest.raises(DataError, match="train_loss"):
        training_curves_figure(history.drop(columns=["train_loss"]))
    with pytest.raises(DataError, match=".png"):
        save_figure(fig, tmp_path / "curves.jpeg")
