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
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    for model, rank in fr.average_ranks.items():  # every model is labelled with its own average rank
        assert f"{model} ({rank:.2f})" in texts or f"({rank:.2f}) {model}" in texts
    assert "Nemenyi" in fig.axes[0].get_title()
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
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("params") and ax.get_ylabel() == "mean over seeds"
    points = {(float(x), round(float(y), 6)) for line in ax.lines if line.get_marker() == "o"
              for x, y in zip(line.get_xdata(), line.get_ydata(), strict=True)}
    assert points == set(zip(summary["params"], summary["mean"].round(6), strict=True)), "one point per model"
    assert "Pareto front" in [t.get_text() for t in ax.get_legend().get_texts()]
    with pytest.raises(DataError, match="one row per model"):
        accuracy_cost_figure(pd.concat([summary, summary]))


def test_recall_confusion_and_curves(tmp_path):
    preds = prediction_table()
    other = prediction_table(seed=1)
    recall = per_class_recall_figure({"a": preds, "b": other}, class_names=list("wxyz"), path=tmp_path / "recall.png")
    ax = recall.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == list("wxyz") and ax.get_ylabel() == "recall"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    heights = [[bar.get_height() for bar in container] for container in ax.containers]
    for table, drawn in zip((preds, other), heights, strict=True):  # one bar per class = that class's recall
        predicted = table[[f"prob_{j}" for j in range(4)]].to_numpy().argmax(1)
        expected = [np.mean(predicted[table["label"] == c] == c) for c in range(4)]
        assert np.allclose(drawn, expected)
    cm = confusion_matrix_figure(preds, path=tmp_path / "cm.png")
    ax = cm.axes[0]
    assert ax.get_xlabel() == "predicted" and ax.get_ylabel() == "true"
    assert ax.images[0].get_array().shape == (4, 4) and len(ax.texts) == 16  # one annotated cell per pair
    predicted = preds[[f"prob_{j}" for j in range(4)]].to_numpy().argmax(1)
    row0 = [np.mean(predicted[preds["label"] == 0] == j) for j in range(4)]
    assert np.allclose(ax.images[0].get_array()[0], row0), "rows are the recall-normalised true classes"
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
    loss_ax, score_ax = fig.axes
    assert len(loss_ax.lines) == len(score_ax.lines) == 4  # one line per (model, seed) run
    assert (loss_ax.get_xlabel(), loss_ax.get_ylabel()) == ("epoch", "train_loss")
    assert (score_ax.get_xlabel(), score_ax.get_ylabel()) == ("epoch", "val_balanced_accuracy")
    assert [t.get_text() for t in score_ax.get_legend().get_texts()] == ["resnet18", "resnet18+se"]
    assert np.allclose(score_ax.lines[0].get_ydata(), 0.5 + 0.03 * np.arange(6))
    for name in ("recall.png", "cm.png", "curves.png"):
        assert is_png(tmp_path / name)
    with pytest.raises(DataError, match="class_names"):
        confusion_matrix_figure(preds, class_names=["a"])
    with pytest.raises(DataError, match="train_loss"):
        training_curves_figure(history.drop(columns=["train_loss"]))
    with pytest.raises(DataError, match=".png"):
        save_figure(fig, tmp_path / "curves.jpeg")
