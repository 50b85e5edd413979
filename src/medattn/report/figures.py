"""Report figures built from the tidy tables: CD diagram, accuracy vs cost with its Pareto front,
per-class recall, confusion matrix and training curves.

Every function returns a ``matplotlib.figure.Figure`` made without pyplot (so nothing depends on the
interactive backend or leaks global state; rendering goes through Agg) and saves it when given
``path`` (format from the suffix: .png, .svg, .pdf).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scikit_posthocs as sp
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, NullFormatter

from medattn.errors import DataError
from medattn.rundir.columns import model_role
from medattn.stats.predictions import confusion_matrix, per_class_recall

_ROLE_COLORS = {"baseline": "tab:gray", "plain": "tab:blue", "attention": "tab:orange"}


def _figure(width: float, height: float) -> Figure:
    """Return an empty Figure bound to the Agg canvas."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path, *, dpi: int = 150) -> Path:
    """Save ``fig`` to ``path`` (parent folders created; format from the suffix) and return the path."""
    path = Path(path)
    if path.suffix.lower() not in {".png", ".svg", ".pdf"}:
        raise DataError(f"figure path {str(path)!r} must end in .png, .svg or .pdf")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def _finish(fig: Figure, path: str | Path | None) -> Figure:
    """Save ``fig`` when a path is given and return it."""
    if path is not None:
        save_figure(fig, path)
    return fig


def _require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise DataError naming the columns ``df`` lacks for figure ``what``."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{what} needs column(s) {missing}; got {list(df.columns)}")


def cd_diagram(
    average_ranks: pd.Series,
    nemenyi_p: pd.DataFrame,
    *,
    critical_difference: float | None = None,
    alpha: float = 0.05,
    title: str | None = None,
    path: str | Path | None = None,
) -> Figure:
    """Return a critical-difference diagram: average ranks, bars joining models Nemenyi cannot tell apart."""
    ranks = pd.Series(average_ranks, dtype=float).sort_values()
    k = len(ranks)
    fig = _figure(8, 1.2 + 0.35 * k)
    ax = fig.add_subplot()
    sp.critical_difference_diagram(
        ranks,
        nemenyi_p.loc[ranks.index, ranks.index],
        cd=critical_difference,
        alpha=alpha,
        ax=ax,
        label_fmt_left="{label} ({rank:.2f})",
        label_fmt_right="({rank:.2f}) {label}",
    )
    ax.set_xlim(min(1.0, ranks.min()) - 0.1, max(float(k), ranks.max()) + 0.1)
    ax.set_title(
        title or f"Average rank (1 = best); bars: no significant difference (Nemenyi, alpha {alpha})",
        fontsize=9,
        pad=18,
    )
    return _finish(fig, path)


def pareto_front(df: pd.DataFrame, cost_col: str, acc_col: str) -> np.ndarray:
    """Return a boolean mask of rows no other row beats (cost <= and accuracy >=, one of them strictly)."""
    _require(df, [cost_col, acc_col], "pareto_front")
    cost = df[cost_col].to_numpy(float)
    acc = df[acc_col].to_numpy(float)
    ok = ~(np.isnan(cost) | np.isnan(acc))
    c, a = cost[:, None], acc[:, None]
    dominated_by = (cost[None, :] <= c) & (acc[None, :] >= a) & ((cost[None, :] < c) | (acc[None, :] > a))
    dominated_by &= ok[None, :]
    return ok & ~dominated_by.any(axis=1)


def _role(row: pd.Series) -> str:
    """Return the model role of a summary row (plain when the row has no role columns)."""
    return model_role(bool(row.get("is_baseline", False)), str(row.get("attention", "none")))


def accuracy_cost_figure(
    summary: pd.DataFrame,
    *,
    cost_col: str = "params",
    acc_col: str = "mean",
    err_col: str | None = "std",
    label_col: str = "model",
    log_x: bool = True,
    title: str | None = None,
    path: str | Path | None = None,
) -> Figure:
    """Return accuracy vs cost (one point per model, error bars) with the Pareto front drawn and labelled."""
    _require(summary, [cost_col, acc_col, label_col], "accuracy_cost_figure")
    if summary[label_col].duplicated().any():
        raise DataError(f"accuracy_cost_figure needs one row per {label_col}; pick one dataset and metric")
    df = summary.reset_index(drop=True)
    mask = pareto_front(df, cost_col, acc_col)
    fig = _figure(7, 4.5)
    ax = fig.add_subplot()
    roles = df.apply(_role, axis=1)
    for role, color in _ROLE_COLORS.items():
        sel = (roles == role).to_numpy()
        if not sel.any():
            continue
        yerr = df.loc[sel, err_col].to_numpy(float) if err_col and err_col in df.columns else None
        ax.errorbar(
            df.loc[sel, cost_col],
            df.loc[sel, acc_col],
            yerr=yerr,
            fmt="o",
            color=color,
            ecolor=color,
            alpha=0.85,
            capsize=3,
            label=role,
        )
    front = df[mask].sort_values(cost_col)
    if len(front):
        ax.step(front[cost_col], front[acc_col], where="post", color="k", lw=1, ls="--", label="Pareto front")
    for i, row in df.iterrows():
        ax.annotate(
            str(row[label_col]),
            (row[cost_col], row[acc_col]),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=8,
            color="k" if mask[i] else "0.45",
            fontweight="bold" if mask[i] else "normal",
        )
    if log_x:
        ax.set_xscale("log")
        costs = df[cost_col].to_numpy(float)
        costs = costs[np.isfinite(costs) & (costs > 0)]
        narrow = len(costs) > 0 and np.log10(costs.max() / costs.min()) < 1.5
        ax.xaxis.set_minor_formatter(EngFormatter() if narrow else NullFormatter())
    ax.xaxis.set_major_formatter(EngFormatter())
    ax.set_xlabel(cost_col + (" (log scale)" if log_x else ""))
    ax.set_ylabel(acc_col if acc_col != "mean" else "mean over seeds")
    ax.set_title(title or f"Accuracy vs {cost_col}", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _finish(fig, path)


def per_class_recall_figure(
    predictions: Mapping[str, pd.DataFrame],
    *,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
    path: str | Path | None = None,
) -> Figure:
    """Return a grouped bar chart of per-class recall, one bar group per class and one bar per model."""
    if not predictions:
        raise DataError("per_class_recall_figure needs at least one model's prediction table")
    recalls = {name: per_class_recall(p) for name, p in predictions.items()}
    k = max(len(r) for r in recalls.values())
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise DataError(f"class_names has {len(names)} entries but the predictions have {k} classes")
    fig = _figure(max(6, 0.6 * k * len(recalls) ** 0.5 + 3), 4)
    ax = fig.add_subplot()
    width = 0.8 / len(recalls)
    x = np.arange(k)
    for i, (name, r) in enumerate(recalls.items()):
        ax.bar(x + (i - (len(recalls) - 1) / 2) * width, np.nan_to_num(r), width, label=name)
    ax.set_xticks(x, names, rotation=30 if k > 6 else 0, ha="right" if k > 6 else "center")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("recall")
    ax.set_title(title or "Per-class recall", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _finish(fig, path)


def confusion_matrix_figure(
    predictions: pd.DataFrame,
    *,
    class_names: Sequence[str] | None = None,
    normalize: bool = True,
    title: str | None = None,
    path: str | Path | None = None,
) -> Figure:
    """Return a confusion-matrix heatmap (rows true class, columns predicted; row-normalised by default)."""
    cm = confusion_matrix(predictions, normalize="true" if normalize else None)
    k = cm.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise DataError(f"class_names has {len(names)} entries but the predictions have {k} classes")
    fig = _figure(2.2 + 0.6 * k, 1.2 + 0.55 * k)
    ax = fig.add_subplot()
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, shrink=0.8)
    for i in range(k):
        for j in range(k):
            val = cm[i, j]
            text = f"{val:.2f}" if normalize else f"{int(val)}"
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=7,
                color="white" if val > 0.6 * np.nanmax(cm) else "black",
            )
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or ("Confusion matrix" + (" (recall per row)" if normalize else "")), fontsize=10)
    return _finish(fig, path)


def training_curves_figure(
    history: pd.DataFrame,
    *,
    loss_col: str = "train_loss",
    score_col: str = "val_balanced_accuracy",
    title: str | None = None,
    path: str | Path | None = None,
) -> Figure:
    """Return training loss and validation score per epoch; one line per run, one colour per model."""
    _require(history, ["epoch", loss_col, score_col], "training_curves_figure")
    run_cols = [c for c in ("model", "seed") if c in history.columns] or (
        ["run"] if "run" in history.columns else []
    )
    model_col = "model" if "model" in history.columns else None
    fig = _figure(10, 4)
    ax_loss, ax_score = fig.subplots(1, 2)
    groups = history.groupby(run_cols, sort=True) if run_cols else [((), history)]
    models = sorted(history[model_col].unique()) if model_col else [None]
    colors = {m: f"C{i % 10}" for i, m in enumerate(models)}
    seen: set = set()
    for _, run in groups:
        run = run.sort_values("epoch")
        model = run[model_col].iloc[0] if model_col else None
        label = None if model in seen else (str(model) if model is not None else None)
        seen.add(model)
        ax_loss.plot(run["epoch"], run[loss_col], color=colors[model], alpha=0.7, lw=1, label=label)
        ax_score.plot(run["epoch"], run[score_col], color=colors[model], alpha=0.7, lw=1, label=label)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel(loss_col)
    ax_score.set_xlabel("epoch")
    ax_score.set_ylabel(score_col)
    for ax in (ax_loss, ax_score):
        ax.grid(alpha=0.3)
    if model_col:
        ax_score.legend(fontsize=8)
    fig.suptitle(title or "Training curves", fontsize=10)
    return _finish(fig, path)
