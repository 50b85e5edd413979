"""Report section "Explanations": where the models look, scored against lesion and artefact masks.

Reads only RUN_DIR/explanations (sample.npz, runs.csv, scores.csv) and the runs' maps.npz + index.csv
written by `medattn explain` (or the study's `explain:` block). Per dataset: a gallery (the same images for
every model; image with the mask contour, each model's Grad-CAM, each model's own attention map where it
has one; one colour scale), the metric table (mean [95 % CI]), the randomisation check and the
attention-vs-plain verdicts from the stats module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from medattn.explain import store
from medattn.explain.randomisation import FLAG_ABOVE
from medattn.explain.sample import read_sample
from medattn.explain.summary import compare_explanations, metric_summary
from medattn.report.context import ReportContext
from medattn.report.document import BulletList, FigureBlock, Paragraph, Section, Table
from medattn.report.formatting import NA
from medattn.report.layout import DATASET_SECTIONS  # the built-in sections are registered first
from medattn.rundir.reader import migrate_path
from medattn.rundir.table import ATTENTION_VS_PLAIN, model_roles

METRIC_COLUMNS = {"energy": "energy in lesion", "pointing": "pointing", "iou": "top-k IoU",
                  "artefact_energy": "energy on artefacts", "deletion_auc": "deletion AUC ↓",
                  "insertion_auc": "insertion AUC ↑", "randomisation_spearman": "rand. ρ ↓"}
GALLERY_PER_CLASS = 2  # one correctly and one wrongly classified image per class, when there are


def _load(run_dir: Path, dataset: str) -> tuple[pd.DataFrame, pd.DataFrame, Path] | None:
    """runs.csv rows and scores of `dataset`, and its sample file; None when no explanations were computed."""
    try:
        runs = store.read_runs(run_dir)
    except Exception:
        return None
    runs = runs[runs["dataset"] == dataset]
    scores = store.read_scores(run_dir)
    if runs.empty or scores is None:
        return None
    sample = (migrate_path(runs["sample"].iloc[0], run_dir) if "sample" in runs.columns
              else store.study_dir(run_dir) / store.SAMPLE_FILE)
    return runs, scores[scores["dataset"] == dataset], sample


def _cell(row: pd.Series | None) -> str:
    if row is None or not np.isfinite(row["mean"]):
        return NA
    if not np.isfinite(row["ci_low"]) or row["ci_low"] == row["ci_high"]:
        return f"{row['mean']:.3f}"
    return f"{row['mean']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def metric_table(summary: pd.DataFrame, models: list[str]) -> Table:
    """Mean [95 % CI] per model and method (target: predicted class); n/a where a method does not apply."""
    sub = summary[summary["target"] == "predicted"]
    metrics = [m for m in METRIC_COLUMNS if m in set(sub["metric"])]
    methods = [m for m in dict.fromkeys(sub["method"]) if m != "uniform"] + ["uniform"]
    lookup = {(r["model"], r["method"], r["metric"]): r for _, r in sub.iterrows()}
    rows = []
    for method in methods:
        for model in (models if method != "uniform" else models[:1]):
            cells = [_cell(lookup.get((model, method, m))) for m in metrics]
            if method != "uniform" and all(c == NA for c in cells):
                cells = ["n/a (no such map)"] + [NA] * (len(metrics) - 1)
            rows.append((model if method != "uniform" else "(uniform map)", method, *cells))
    return Table(("model", "method", *(METRIC_COLUMNS[m] for m in metrics)), tuple(rows),
                 align=("l", "l", *("r" * len(metrics))),
                 caption="Mean [95 % CI over images, seed-averaged], maps for the predicted class. Uniform map: the "
                         "score of an uninformative map (the mask's area share for energy).")


def randomisation_notes(summary: pd.DataFrame) -> list[str]:
    """One sentence per (model, method) whose maps barely change when the weights are randomised."""
    sub = summary[(summary["metric"] == "randomisation_spearman") & (summary["target"] == "predicted")]
    flagged = sub[sub["mean"] > FLAG_ABOVE]
    return [f"{r.model} / {r.method}: maps of the trained and of a randomly initialised model correlate "
            f"(Spearman ρ = {r.mean:.2f} > {FLAG_ABOVE}); this method fails the randomisation sanity check here"
            for r in flagged.itertuples()]


def _first_maps(run_dir: Path, runs: pd.DataFrame, model: str) -> tuple[np.ndarray, pd.DataFrame] | None:
    rows = runs[runs["model"] == model].sort_values("seed")
    if rows.empty:
        return None
    return store.read_maps(migrate_path(rows["maps"].iloc[0], run_dir))


def gallery_images(index: pd.DataFrame, labels: np.ndarray, ids: np.ndarray) -> list[int]:
    """Sample positions for the gallery: per class, the first correct and the first wrong prediction."""
    first = index.drop_duplicates("image_id").set_index("image_id")
    picked = []
    for c in np.unique(labels):
        for correct in (True, False):
            hits = [i for i, (img, lab) in enumerate(zip(ids, labels, strict=True))
                    if lab == c and img in first.index and (first.loc[img, "predicted"] == lab) == correct]
            picked += hits[:GALLERY_PER_CLASS // 2]
    return picked


def _column(maps: np.ndarray, index: pd.DataFrame, method: str, ids: np.ndarray) -> np.ndarray | None:
    sub = index[(index["method"] == method) & (index["target"] == "predicted")]
    if sub.empty:
        return None
    layers = list(dict.fromkeys(sub["layer"]))
    sub = sub[sub["layer"] == layers[-1]] if method == "attention" else sub
    rows = sub.set_index("image_id")["row"]
    return np.stack([maps[rows[i]].astype(np.float32) for i in ids])


def gallery_figure(run_dir: Path, runs: pd.DataFrame, sample_path: Path, models: list[str]) -> Figure | None:
    """Rows: images; columns: image (+ mask contour), each model's Grad-CAM, each model's attention map."""
    sample = read_sample(sample_path)
    loaded = {m: _first_maps(run_dir, runs, m) for m in models}
    loaded = {m: v for m, v in loaded.items() if v is not None}
    if not loaded:
        return None
    reference = next(iter(loaded.values()))[1]
    picks = gallery_images(reference, sample.labels.numpy(), sample.ids)
    if not picks:
        return None
    ids = sample.ids[picks]
    columns: list[tuple[str, np.ndarray]] = []
    for method, title in (("gradcam", "Grad-CAM"), ("attention", "attention"), ("rollout", "rollout")):
        for model, (maps, index) in loaded.items():
            col = _column(maps, index, method, ids)
            if col is not None:
                columns.append((f"{model}\n{title}", col))
    images = sample.images[picks].permute(0, 2, 3, 1).numpy()
    fig = Figure(figsize=(1.6 * (len(columns) + 1) + 0.6, 1.6 * len(picks)), layout="constrained")
    axes = fig.subplots(len(picks), len(columns) + 1, squeeze=False)
    shown = None
    for r, pos in enumerate(picks):
        image = images[r] if images.shape[-1] == 3 else images[r][..., 0]
        axes[r, 0].imshow(image, cmap=None if image.ndim == 3 else "gray")
        if sample.masks is not None:
            axes[r, 0].contour(sample.masks[pos].numpy(), levels=[0.5], colors="cyan", linewidths=0.8)
        label = sample.class_names[int(sample.labels[pos])] if sample.class_names else str(int(sample.labels[pos]))
        axes[r, 0].set_ylabel(f"{ids[r]}\n{label}", fontsize=7)
        for c, (title, col) in enumerate(columns, start=1):
            axes[r, c].imshow(image, cmap=None if image.ndim == 3 else "gray")
            shown = axes[r, c].imshow(col[r], cmap="jet", vmin=0, vmax=1, alpha=0.5)
            if r == 0:
                axes[r, c].set_title(title, fontsize=7)
    axes[0, 0].set_title("image, mask", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if shown is not None:
        fig.colorbar(shown, ax=axes, shrink=0.6, label="saliency (one scale for all maps)")
    return fig


def explanations_section(ctx: ReportContext, dataset: str) -> Section | None:
    """The 'Explanations' subsection of `dataset`, or None when `medattn explain` has not been run."""
    found = _load(ctx.run.run_dir, dataset)
    if found is None:
        return None
    runs, scores, sample_path = found
    models = [m for m in ctx.run.models(dataset) if m in set(runs["model"])]
    summary = metric_summary(scores, ctx.settings.confidence)
    section = Section("Explanations")
    section.add(Paragraph(f"{runs['seed'].nunique()} seed(s) x {len(models)} model(s) explained on the same "
                          f"{scores['image_id'].nunique()} images (`{sample_path.name}`). Localisation needs "
                          "lesion masks; energy on artefacts needs artefact masks."))
    figure = gallery_figure(ctx.run.run_dir, runs, sample_path, models)
    if figure is not None:
        section.add(FigureBlock(f"explanations-{dataset}", figure,
                                "Gallery: the same images for every model (first seed), one correctly and one wrongly "
                                "classified image per class where there are; cyan: lesion mask; one colour scale."))
    if not summary.empty:
        section.add(metric_table(summary, models))
    roles = model_roles(ctx.results[ctx.results["dataset"] == dataset]).reset_index()
    sentences = []
    for method in ("gradcam", "attention"):
        table = compare_explanations(scores, roles, method, alpha=ctx.settings.alpha, rope=ctx.settings.rope)
        if not table.empty:
            from medattn.stats import describe_comparisons

            sentences += describe_comparisons(table[table["kind"] == ATTENTION_VS_PLAIN])
    if sentences:
        section.add(Paragraph("Attention variants vs their plain backbone (per-seed means over images, paired by "
                              "seed, Holm within each metric):"), BulletList(tuple(sentences)))
    flags = randomisation_notes(summary)
    section.add(BulletList(tuple(flags)) if flags else Paragraph(
        "Randomisation check: no method's maps stay correlated (Spearman ρ above "
        f"{FLAG_ABOVE}) with those of a randomly initialised model."))
    return section


if "explanations" not in DATASET_SECTIONS.names():
    anchor = "training-curves" if "training-curves" in DATASET_SECTIONS.names() else None
    DATASET_SECTIONS.register("explanations", explanations_section, before=anchor)
