"""Where the models err and how they trained: per-class recall and confusion matrices pooled over seeds
(from the prediction files) and the training curves (from each run's metrics.json history).

Pooling: every seed's test predictions are stacked, so a confusion matrix is the sum of the per-seed
matrices and a class's recall is its correct count over its sample count summed over seeds (each seed
weighs the same, since every seed predicts the same test set).
"""

from __future__ import annotations

import pandas as pd

from medattn.report import formatting as fmt
from medattn.report.context import ReportContext
from medattn.report.document import FigureBlock, FigureRow, Paragraph, Section, Table, slugify
from medattn.report.figures import confusion_matrix_figure, per_class_recall_figure, training_curves_figure
from medattn.report.formatting import metric_label
from medattn.stats.predictions import per_class_recall, prob_columns


def _class_names(ctx: ReportContext, dataset: str, k: int) -> list[str]:
    """Return the dataset's class names when they match ``k`` classes, else '0'..'k-1'."""
    names = ctx.run.class_names(dataset)
    return names if names is not None and len(names) == k else [str(i) for i in range(k)]


def pooled_predictions(ctx: ReportContext, dataset: str, split: str) -> dict[str, tuple[pd.DataFrame, int]]:
    """Return {model: (all seeds' predictions on ``split`` stacked, number of seeds)} for models that have them."""
    out = {}
    for model in ctx.run.models(dataset):
        table, n = ctx.run.pooled_predictions(dataset, model, split)
        if table is not None:
            out[model] = (table, n)
    return out


def per_class_section(ctx: ReportContext, dataset: str) -> Section | None:
    """Return the per-class subsection: recall table and bar chart, and one confusion matrix per model."""
    if ctx.run.study.get("task") == "segmentation":
        return None  # per-image Dice, not class probabilities: the segmentation sections stand in for it
    split = ctx.settings.split
    pooled = pooled_predictions(ctx, dataset, split)
    if not pooled:
        return Section("Per-class recall and confusion matrices",
                       [Paragraph(f"No prediction files for {split} were found, so per-class results are missing "
                                  "(see the notes at the end).")])
    ks = {len(prob_columns(t)) for t, _ in pooled.values()}
    if len(ks) != 1:
        return Section("Per-class recall and confusion matrices",
                       [Paragraph(f"The prediction files disagree on the number of classes ({sorted(ks)}).")])
    k = ks.pop()
    names = _class_names(ctx, dataset, k)
    tables = {m: t for m, (t, _) in pooled.items()}
    recall_rows = tuple(
        (model, str(n), *(fmt.pct(v) for v in per_class_recall(tables[model]))) for model, (_, n) in pooled.items()
    )
    seeds = sorted({n for _, n in pooled.values()})
    pooled_note = f"pooled over {seeds[0]} seeds" if len(seeds) == 1 else "pooled over each model's seeds"
    section = Section("Per-class recall and confusion matrices")
    section.add(
        Table(columns=("Model", "Seeds", *names), rows=recall_rows, align=("l", "r", *("r",) * k),
              caption=f"Recall (%) per class on {split}, {pooled_note}."),
        FigureBlock(slugify(f"{dataset}-per-class-recall"),
                    per_class_recall_figure(tables, class_names=names, title=f"{dataset}: per-class recall on {split}"),
                    f"Per-class recall on {split}, {pooled_note}."),
        FigureRow(
            tuple(
                FigureBlock(slugify(f"{dataset}-confusion-{model}"),
                            confusion_matrix_figure(table, class_names=names, title=f"{model}"),
                            f"Confusion matrix of {model}")
                for model, table in tables.items()
            ),
            caption=f"Confusion matrices on {split} (rows: true class, normalised to recall; {pooled_note}).",
        ),
    )
    return section


def curves_section(ctx: ReportContext, dataset: str) -> Section | None:
    """Return the training-curves subsection (loss and validation score per epoch, every run)."""
    history = ctx.run.history(dataset)
    title = "Training curves"
    if history.empty or "epoch" not in history.columns or "train_loss" not in history.columns:
        return Section(title, [Paragraph("No training histories (metrics.json) were found for this dataset.")])
    score = f"val_{ctx.settings.primary_metric}"
    if score not in history.columns:
        candidates = [c for c in history.columns if c.startswith("val_")]
        if not candidates:
            return Section(title, [Paragraph("The training histories record no validation score.")])
        score = candidates[0]
    fig = training_curves_figure(history, loss_col="train_loss", score_col=score,
                                 title=f"{dataset}: training loss and validation {metric_label(score[4:])}")
    runs = history.groupby(["model", "seed"]).ngroups
    return Section(title, [FigureBlock(
        slugify(f"{dataset}-training-curves"), fig,
        f"Training loss (left) and validation {metric_label(score[4:])} (right) per epoch; one line per run "
        f"({runs} runs), one colour per model. The checkpoint kept is the epoch with the best validation "
        f"{'Dice' if ctx.run.study.get('task') == 'segmentation' else 'balanced accuracy'}.")])
