"""Report section "Explanations": where the models look, scored against lesion and artefact masks, each number
beside the references that say what it means.

Reads only RUN_DIR/explanations (sample.npz, runs.csv, scores.csv, settings.json) and the runs' maps.npz +
index.csv written by `medattn explain` (or the study's `explain:` block). Per dataset:

1. the settings the scores depend on: target layer and grid per model and method, upsampling, deletion/insertion
   baseline and steps, pointing tolerance and tie rule, top-k fraction; a layer coarser than min_grid (only
   possible with force_layer) is marked ⚠ wherever its numbers appear;
2. the gallery, one figure per seed (`explanation_gallery.py`);
3. localisation (mean [CI], NaN counts) beside the uniform map, a random map on the same grid, the mask (oracle)
   and the mask pushed through the grid (the ceiling the resolution allows), and the oracle check: a metric
   whose ceiling is not above the uniform map's CI cannot separate models and gets no verdict;
4. faithfulness (deletion, insertion, insertion gain) beside a random pixel ranking;
5. attention-vs-plain verdicts (per-seed means, paired by seed, Holm within each method) where the oracle check
   passes;
6. sanity checks: model (and, when computed, data) randomisation flagged by `randomisation.flag_interval`,
   "underpowered" on coarse grids, and the cascading randomisation curve (`explanation_checks.py`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medattn.explain import store
from medattn.explain.summary import (
    REFERENCE_METHODS,
    ceiling_for,
    coarse,
    compare_explanations,
    metric_summary,
    oracle_check,
)
from medattn.report.context import ReportContext
from medattn.report.document import BulletList, FigureBlock, Paragraph, Section, Table
from medattn.report.formatting import NA
from medattn.report.layout import DATASET_SECTIONS  # the built-in sections are registered first
from medattn.report.sections.explanation_checks import randomisation_blocks
from medattn.report.sections.explanation_gallery import seed_galleries
from medattn.rundir.reader import migrate_path
from medattn.rundir.table import ATTENTION_VS_PLAIN, model_roles

LOCALISATION_COLUMNS = {"energy": "energy in lesion ↑", "pointing": "pointing ↑", "iou": "top-k IoU ↑",
                        "artefact_energy": "energy on artefacts ↓"}
FAITHFULNESS_COLUMNS = {"deletion_auc": "deletion AUC ↓", "insertion_auc": "insertion AUC ↑",
                        "insertion_gain": "insertion gain ↑"}
REFERENCE_LABELS = {"uniform": "uniform map", "random": "random map", "oracle": "oracle: the mask",
                    "oracle_grid": "oracle: mask through the grid"}
METHOD_ORDER = ("gradcam", "gradcampp", "layercam", "scorecam", "eigencam", "intgrad", "attention", "rollout")
COMPARED_METHODS = ("gradcam", "intgrad", "attention")
DEFAULT_MIN_GRID = 5  # stores written before settings.json: explain.spec's default


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


def where(layer: str, grid: int) -> str:
    """'layer1 (8×8)', 'pixels (40×40)' for pixel-resolution maps, the layer alone when the grid is unknown."""
    if layer == "input":
        return f"pixels ({grid}×{grid})"
    if grid <= 0:
        return layer or "—"
    return f"{layer} ({grid}×{grid})" if layer else f"{grid}×{grid}"


def cell(row: pd.Series | None, min_grid: int) -> str:
    """'mean [low, high]', ⚠ before it on a grid coarser than min_grid, '(NaN k/n)' after it when scores were NaN."""
    if row is None:
        return NA
    nan = f" (NaN {int(row['nan'])}/{int(row['scores'])})" if row["nan"] > 0 else ""
    if not np.isfinite(row["mean"]):
        return NA + nan
    text = f"{row['mean']:.3f}"
    if np.isfinite(row["ci_low"]) and row["ci_low"] != row["ci_high"]:
        text += f" [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
    return ("⚠ " if coarse(row["grid"], min_grid) else "") + text + nan


def _coarse_note(sub: pd.DataFrame, min_grid: int) -> str:
    if not any(coarse(g, min_grid) for g in sub["grid"]):
        return ""
    return (f" ⚠: computed on a grid coarser than min_grid {min_grid} (forced, or no stage reached it): these "
            "numbers measure the grid's geometry as much as the model.")


def _methods(summary: pd.DataFrame) -> list[str]:
    found = [m for m in dict.fromkeys(summary["method"]) if m not in REFERENCE_METHODS]
    return sorted(found, key=lambda m: (METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), m))


def _table_rows(sub: pd.DataFrame, models: list[str], metrics: list[str], references: dict[str, str],
                min_grid: int) -> list[tuple[str, ...]]:
    """Each model's methods, then each reference: one row for all models when their cells are equal."""
    lookup = {(r["model"], r["method"], r["metric"]): r for _, r in sub.iterrows()}

    def layer_of(model: str, method: str) -> str:
        row = next((lookup[k] for m in metrics if (k := (model, method, m)) in lookup), None)
        return NA if row is None else where(str(row["layer"]), int(row["grid"]))

    rows = []
    for model in models:
        for method in _methods(sub):
            cells = [cell(lookup.get((model, method, m)), min_grid) for m in metrics]
            if all(c == NA for c in cells):
                cells = ["n/a (no such map)"] + [NA] * (len(metrics) - 1)
            rows.append((model, method, layer_of(model, method), *cells))
    for method, label in references.items():
        per_model = {m: tuple(cell(lookup.get((m, method, x)), min_grid) for x in metrics) for m in models}
        per_model = {m: c for m, c in per_model.items() if any(v != NA for v in c)}
        if not per_model:
            continue
        if len(set(per_model.values())) == 1 and len({layer_of(m, method) for m in per_model}) == 1:
            model = next(iter(per_model))
            rows.append(("(all models)", label, layer_of(model, method), *per_model[model]))
        else:
            rows += [(m, label, layer_of(m, method), *c) for m, c in per_model.items()]
    return rows


def localisation_table(summary: pd.DataFrame, models: list[str], min_grid: int) -> Table | None:
    """Energy, pointing, IoU and artefact energy per model and method, then the four references."""
    sub = summary[summary["target"] == "predicted"]
    metrics = [m for m in LOCALISATION_COLUMNS if m in set(sub["metric"])]
    if not metrics:
        return None
    rows = _table_rows(sub[sub["metric"].isin(metrics)], models, metrics, REFERENCE_LABELS, min_grid)
    return Table(("model", "method", "layer (grid)", *(LOCALISATION_COLUMNS[m] for m in metrics)), tuple(rows),
                 align=("l", "l", "l", *("r" * len(metrics))),
                 caption="Localisation, maps for the predicted class: mean [95 % CI over images, seed-averaged]; "
                         "(NaN k/n): k of the n image x seed scores were NaN and are left out. References: "
                         "uniform map (what an uninformative map scores: the mask's area share for energy); "
                         "random map (i.i.d. noise on the maps' grid, upsampled the same way); oracle (the lesion "
                         "mask itself, the ceiling at pixel resolution); mask through the grid (the mask averaged "
                         "onto the CAM grid and upsampled: the ceiling this layer allows)."
                         + _coarse_note(sub, min_grid))


def faithfulness_table(summary: pd.DataFrame, models: list[str], min_grid: int) -> Table | None:
    """Deletion AUC, insertion AUC and insertion gain per model and method, each model's random ranking below."""
    sub = summary[(summary["target"] == "predicted") & summary["metric"].isin(list(FAITHFULNESS_COLUMNS))]
    if sub.empty:
        return None
    metrics = [m for m in FAITHFULNESS_COLUMNS if m in set(sub["metric"])]
    lookup = {(r["model"], r["method"], r["metric"]): r for _, r in sub.iterrows()}
    rows = []
    for model in models:
        for method in [*_methods(sub), "random"]:
            cells = [cell(lookup.get((model, method, m)), min_grid) for m in metrics]
            if all(c == NA for c in cells):
                continue
            first = next(lookup[k] for m in metrics if (k := (model, method, m)) in lookup)
            layer = "pixels, random order" if method == "random" else where(str(first["layer"]), int(first["grid"]))
            rows.append((model, "random ranking" if method == "random" else method, layer, *cells))
    return Table(("model", "method", "layer (grid)", *(FAITHFULNESS_COLUMNS[m] for m in metrics)), tuple(rows),
                 align=("l", "l", "l", *("r" * len(metrics))),
                 caption="Faithfulness (Petsiuk et al. 2018), predicted class: pixels removed (deletion) or put "
                         "back (insertion) in the map's order, area under the class probability curve; random "
                         "ranking: the same with the pixels in random order (the no-information reference of each "
                         "model). Insertion gain = insertion AUC - p(class | start image), the area the inserted "
                         "pixels add above the prediction on the baseline image where insertion starts, so models "
                         "with different start predictions compare fairly. Mean [95 % CI]; (NaN k/n) as above."
                         + _coarse_note(sub, min_grid))


def settings_blocks(settings: dict, summary: pd.DataFrame, models: list[str], min_grid: int) -> list:
    """The settings paragraph and the table of what was scored on which layer and grid (⚠ for coarse ones)."""
    if settings:
        layer = settings.get("layer", "auto")
        choice = (f"`layer: auto` (per model, the deepest stage whose grid is at least min_grid = {min_grid} cells "
                  "a side)" if layer == "auto" else f"`layer: {layer}`"
                  + (" (forced below min_grid)" if settings.get("force_layer") else ""))
        text = (f"Settings (`explanations/settings.json`): target layer {choice}; CAM grid upsampled to the image "
                f"with `{settings.get('upsample', 'bilinear')}` interpolation; deletion/insertion baseline "
                f"`{settings.get('baseline', 'blur')}`, {settings.get('steps', '?')} steps; pointing game: a hit "
                f"when any maximum of the map (ties included, as Quantus' PointingGame) lies within "
                f"{settings.get('tolerance', '?')} px of the lesion mask, a constant map is NaN; top-k IoU over "
                f"the top {100 * float(settings.get('top_fraction', 0.2)):.0f} % of pixels.")
    else:
        text = ("Settings not recorded (an explanation store written before settings.json): layers and grids "
                "below are read from scores.csv.")
    sub = summary[(summary["target"] == "predicted") & ~summary["method"].isin(REFERENCE_METHODS)]
    sub = sub.drop_duplicates(["model", "method"])
    order = {m: i for i, m in enumerate(models)}
    rows = []
    for r in sorted(sub.itertuples(), key=lambda r: (order.get(r.model, len(order)), r.method)):
        note = (f"⚠ coarser than min_grid {min_grid}: every number on this layer measures the grid's geometry as "
                "much as the model" if coarse(r.grid, min_grid) else "")
        rows.append((r.model, r.method, where(str(r.layer), int(r.grid)), note))
    blocks = [Paragraph(text)]
    if rows:
        blocks.append(Table(("model", "method", "scored layer (grid)", "note"), tuple(rows),
                            caption="What was scored: the map's layer and the grid it was upsampled from."))
    return blocks


def oracle_blocks(checks: pd.DataFrame) -> tuple[list, set[tuple[str, str]]]:
    """Sentences of the oracle check (per metric and grid) and the (model, metric) pairs without a verdict."""
    if checks.empty:
        return [], set()
    failing = checks[~checks["separable"]]
    grid_checks = checks[checks["reference"] == "oracle_grid"]
    lines = []
    for (metric, layer, grid), block in grid_checks.groupby(["metric", "layer", "grid"], sort=False):
        r = block.iloc[0]
        span = f"[{r['uniform_low']:.3f}, {r['uniform_high']:.3f}]"
        if block["separable"].all():
            lines.append(f"{metric}: the mask through {where(layer, grid)} scores {r['ceiling']:.3f}, above the "
                         f"uniform map's {r['uniform']:.3f} {span}: models can be told apart on it.")
        else:
            lines.append(f"**{metric} cannot separate models at this resolution**: the mask itself, pushed through "
                         f"{where(layer, grid)}, scores {r['ceiling']:.3f}, within the uniform map's CI "
                         f"{r['uniform']:.3f} {span}; no verdict is given on it for maps at this grid.")
    blocks = [Paragraph("Oracle check (the best score this resolution allows vs an uninformative map):"),
              BulletList(tuple(lines))] if lines else []
    return blocks, {(r.model, r.metric) for r in failing.itertuples()}


def verdict_blocks(ctx: ReportContext, dataset: str, scores: pd.DataFrame, summary: pd.DataFrame,
                   checks: pd.DataFrame, min_grid: int) -> list:
    """Attention-vs-plain verdicts per compared method, without those the oracle check rules out."""
    from medattn.stats import describe_comparisons

    roles = model_roles(ctx.results[ctx.results["dataset"] == dataset]).reset_index()
    grids = {(r.model, r.method): int(r.grid) for r in summary.itertuples()}
    sentences, withheld = [], []
    for method in [m for m in COMPARED_METHODS if m in set(scores["method"])]:
        table = compare_explanations(scores, roles, method, alpha=ctx.settings.alpha, rope=ctx.settings.rope)
        if table.empty:
            continue
        table = table[table["kind"] == ATTENTION_VS_PLAIN]
        keep = []
        for i, row in table.iterrows():
            metric, pair = row["metric"].removeprefix(method + " "), (row["model"], row["reference"])
            ceilings = [ceiling_for(checks, dataset, m, metric, grids.get((m, method), 0)) for m in pair]
            if any(c is not None and not c["separable"] for c in ceilings):
                withheld.append(f"{row['model']} vs {row['reference']}, {row['metric']}")
            else:
                keep.append(i)
        rough = {i: any(coarse(grids.get((m, method), 0), min_grid) for m in (table.loc[i, "model"],
                                                                                  table.loc[i, "reference"]))
                 for i in keep}
        texts = describe_comparisons(table.loc[keep]) if keep else []
        sentences += [("⚠ (coarse grid) " if rough[i] else "") + t for i, t in zip(keep, texts, strict=True)]
    blocks = []
    if sentences:
        blocks += [Paragraph("Attention variants vs their plain backbone (per-seed means over images, paired by "
                             "seed, Holm within each method):"), BulletList(tuple(sentences))]
    if withheld:
        blocks.append(Paragraph("No verdict (the metric cannot separate models at the maps' resolution, see the "
                                "oracle check): " + "; ".join(withheld) + "."))
    return blocks


def explanations_section(ctx: ReportContext, dataset: str) -> Section | None:
    """The 'Explanations' subsection of `dataset`, or None when `medattn explain` has not been run."""
    found = _load(ctx.run.run_dir, dataset)
    if found is None:
        return None
    runs, scores, sample_path = found
    models = [m for m in ctx.run.models(dataset) if m in set(runs["model"])]
    settings = store.read_settings(ctx.run.run_dir)
    min_grid = int(settings.get("min_grid", DEFAULT_MIN_GRID))
    summary = metric_summary(scores, ctx.settings.confidence)
    section = Section("Explanations")
    section.add(Paragraph(f"{runs['seed'].nunique()} seed(s) x {len(models)} model(s) explained on the same "
                          f"{scores['image_id'].nunique()} images (`{sample_path.name}`). Localisation needs "
                          "lesion masks; energy on artefacts needs artefact masks."))
    section.add(*settings_blocks(settings, summary, models, min_grid))
    galleries, rule = seed_galleries(ctx.run.run_dir, runs, sample_path, models, scores, list(METHOD_ORDER), min_grid)
    for k, (seed, figure) in enumerate(galleries):
        caption = (f"Gallery, seed {seed}: {rule}. Cyan: lesion outline; dashed lime: artefact outline; under each "
                   "map the model's prediction, its probability for that class (p) and ✓/✗ (right/wrong); inferno "
                   "colour map over a grey copy of the image, one scale for all maps" if k == 0 else
                   f"Gallery, seed {seed}: the same images and layout as seed {galleries[0][0]}, maps and predictions "
                   f"of seed {seed}")
        section.add(FigureBlock(f"explanations-{dataset}" + (f"-seed{seed}" if k else ""), figure, caption + "."))
    if not summary.empty:
        checks = oracle_check(summary)
        for table in (localisation_table(summary, models, min_grid), faithfulness_table(summary, models, min_grid)):
            if table is not None:
                section.add(table)
        oracle, _ = oracle_blocks(checks)
        section.add(*oracle)
        section.add(*verdict_blocks(ctx, dataset, scores, summary, checks, min_grid))
    section.add(*randomisation_blocks(scores, dataset, models, min_grid, ctx.settings.confidence))
    return section


if "explanations" not in DATASET_SECTIONS.names():
    anchor = "training-curves" if "training-curves" in DATASET_SECTIONS.names() else None
    DATASET_SECTIONS.register("explanations", explanations_section, before=anchor)
