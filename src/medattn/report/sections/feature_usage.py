"""Report sections "Feature usage" and "Shortcut probes", built from RUN_DIR/features/ (see medattn.analysis).

Feature usage: a models x features heatmap of the bias-corrected conditional mutual information (bits) at the
kept (best-validation) weights, marked where the corrected p-value is below 0.05 in every seed; a table with the
per-seed interval (one seed) or the t interval over seeds, the direction of the 1-df test, and marks for
features outside the correction's family and features that vary within one label group only; usage curves over
the saved epochs; for each attention variant vs its plain backbone, the per-feature difference of corrected CMI
paired over seeds (paired t-test of `medattn.stats.paired_t`, which gives constant differences their exact
sign-flip p; Holm across features) with a verdict; and, where ABCD features exist, their distribution per class.
Shortcut probes: flip rate, change of the positive-class
probability and of balanced accuracy per model and artefact, beside the ID - OOD gap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from medattn.analysis.probes import seed_summary
from medattn.report import formatting as fmt
from medattn.report.context import ReportContext
from medattn.report.document import FigureBlock, Paragraph, Section, Table
from medattn.report.registry import DATASET_SECTIONS
from medattn.rundir import layout
from medattn.rundir.table import model_roles, plain_references
from medattn.stats.correction import holm
from medattn.stats.interval import mean_t_interval
from medattn.stats.paired import paired_t

ALPHA = 0.05
MAX_CURVE_FEATURES = 6
KEPT = ("best", "final")  # the kept weights ('final' in usage tables written before it was named 'best')


def _read(ctx: ReportContext, name: str) -> pd.DataFrame | None:
    """A table of RUN_DIR/features/ (None when absent)."""
    path = ctx.run.run_dir / layout.FEATURES / name
    return pd.read_csv(path) if path.is_file() else None


def feature_usage_section(ctx: ReportContext, dataset: str) -> Section | None:
    """The 'Feature usage' subsection of one dataset (None when `medattn features` has not run)."""
    usage = _read(ctx, layout.USAGE)
    if usage is None or dataset not in set(usage["dataset"]):
        return None
    usage = usage[usage["dataset"] == dataset].copy()
    usage["epoch"] = usage["epoch"].astype(str)
    section = Section("Feature usage")
    correction = usage["correction"].iloc[0] if "correction" in usage else "holm"
    value = "cmi_corrected_bits" if "cmi_corrected_bits" in usage else "cmi_bits"
    usage["value"] = usage[value]
    split = ", ".join(usage["split"].astype(str).unique()) if "split" in usage else "test"
    section.add(Paragraph(
        f"Does a model's prediction depend on a feature beyond the true label? On the {split} split, per model, "
        "seed and feature: the conditional G-test of H0: predicted class independent of feature given label "
        "(Reimers et al. 2020), "
        "with a within-label permutation test when the table is sparse, and a 1-df Mantel (CMH) test of a "
        f"common direction; p-values corrected across the testable features of a run ({correction}). Effect "
        "size: conditional mutual information (CMI, bits) corrected for its upward bias (0 on average when the "
        "feature is not used; it can be negative), with a 95 % interval. Continuous features are binned by "
        "quartiles of the training split. `*`: corrected p < 0.05 in every seed."))
    section.add(Paragraph(
        "What 'used' means: the prediction is associated with the feature among images of the same class. It "
        "does not show that the model looks at the feature: a feature that tracks the model's errors (e.g. "
        "diagnostic difficulty) or another cause of the label is flagged too. The shortcut probes below are the "
        "interventional check. A feature that varies within one label class only (marked 'one label group') "
        "is tested on that class alone; derived features (computed from other features) and untestable ones are "
        "listed but left out of the correction's family."))
    kept = usage[usage["epoch"].isin(KEPT)] if usage["epoch"].isin(KEPT).any() else usage
    name = _kept_name(kept)
    section.add(FigureBlock(f"feature-usage-{dataset}", _heatmap(kept), f"Corrected CMI (bits) of each model x "
                                                                       f"feature on {dataset} at {name}, mean "
                                                                       f"over seeds"))
    section.add(_usage_table(kept))
    epochs = [e for e in usage["epoch"].unique() if e not in KEPT]
    if epochs:
        section.add(FigureBlock(f"feature-usage-curves-{dataset}", _curves(usage),
                                "Corrected CMI (bits) vs saved epoch, mean over seeds (most used features; the "
                                "last point is the kept, best-validation epoch)"))
        over_training = _epoch_vs_kept(usage, min(epochs, key=lambda e: int(e)) if all(
            str(e).isdigit() for e in epochs) else epochs[0])
        if over_training is not None:
            section.add(Paragraph("Does usage change over training? Per model and feature, the corrected CMI at the "
                                  "kept weights minus at the earliest saved epoch, on the same test images, paired "
                                  "by seed (paired t-test, Holm across features):"), over_training)
    paired = _attention_vs_plain(kept, plain_references(model_roles(ctx.results[ctx.results["dataset"] == dataset])))
    if paired is not None:
        section.add(Paragraph("Does attention change which features are used? Per attention variant, the "
                              "difference of corrected CMI to its plain backbone on the same test images, paired "
                              "by seed (paired t-test, Holm across features):"), paired)
    abcd = _read(ctx, layout.abcd_name(dataset))
    if abcd is not None:
        section.add(*_abcd_blocks(abcd, dataset))
    return section


def _kept_name(table: pd.DataFrame) -> str:
    """'best (epoch 5)' when every run kept the same epoch, else 'the best-validation epoch of each run'."""
    labels = set(table["epoch_label"]) if "epoch_label" in table else set()
    return next(iter(labels)) if len(labels) == 1 else "the best-validation epoch of each run"


def _heatmap(table: pd.DataFrame) -> Figure:
    """Models x features heatmap of mean corrected CMI with '*' where every seed's corrected p < ALPHA."""
    cmi = table.pivot_table(index="model", columns="feature", values="value", aggfunc="mean")
    used = table.assign(sig=table["p_adjusted"] < ALPHA).pivot_table(index="model", columns="feature",
                                                                     values="sig", aggfunc="all")
    fig = Figure(figsize=(max(4.0, 0.55 * cmi.shape[1] + 2), max(2.0, 0.45 * cmi.shape[0] + 1.2)),
                 layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(cmi.to_numpy(), cmap="viridis", aspect="auto")
    ax.set_xticks(range(cmi.shape[1]), cmi.columns, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(cmi.shape[0]), cmi.index, fontsize=8)
    for i in range(cmi.shape[0]):
        for j in range(cmi.shape[1]):
            if bool(used.iloc[i, j]):
                ax.text(j, i, "*", ha="center", va="center", color="white", fontsize=11)
    fig.colorbar(image, ax=ax, label="corrected CMI (bits)")
    return fig


def _interval(part: pd.DataFrame) -> str:
    """One seed: its test-inversion interval; several: the t interval of the mean over seeds."""
    if len(part) == 1 and "cmi_low" in part:
        return f"[{part['cmi_low'].iloc[0]:.4f}, {part['cmi_high'].iloc[0]:.4f}]"
    t = mean_t_interval(part["value"])
    return f"[{t.ci_low:.4f}, {t.ci_high:.4f}] (seeds)" if np.isfinite(t.ci_low) else "-"


def _direction(part: pd.DataFrame) -> str:
    """'+' / '-' when the 1-df test rejects at ALPHA in every seed in one direction (with the MH odds ratio)."""
    if "direction_pvalue" not in part or part["direction"].nunique() != 1:
        return ""
    if not (part["direction_pvalue"] < ALPHA).all():
        return ""
    sign = "+" if int(part["direction"].iloc[0]) > 0 else "-"
    odds = part["common_odds_ratio"].median() if "common_odds_ratio" in part else np.nan
    return f"{sign} (OR {odds:.2g})" if np.isfinite(odds) else sign


def _feature_label(feature: str, part: pd.DataFrame) -> str:
    """The feature's name with its family and label-group marks."""
    notes = []
    if "excluded" in part and part["excluded"].notna().all() and (part["excluded"].astype(str) != "").all():
        notes.append(f"{part['excluded'].iloc[0]}, not in family")
    if "single_label_group" in part and part["single_label_group"].astype(bool).any():
        notes.append("one label group")
    return f"{feature} ({'; '.join(notes)})" if notes else str(feature)


def _usage_table(table: pd.DataFrame) -> Table:
    """Per model and feature: mean corrected CMI, its interval, direction, largest corrected p, n, missing."""
    rows = []
    for (model, feature), part in table.groupby(["model", "feature"], sort=False):
        p = part["p_adjusted"]
        rows.append((model, _feature_label(feature, part), f"{part['value'].mean():+.4f}", _interval(part),
                     _direction(part), fmt.pvalue(p.max(), ALPHA) if p.notna().all() else "-", str(len(part)),
                     f"{int(part['n'].median())}", f"{int(part['n_missing'].max())}"))
    return Table(("model", "feature", "corrected CMI (bits)", "95% interval", "direction (1-df test)",
                  "largest corrected p", "seeds", "n", "missing"), tuple(rows),
                 ("l", "l", "r", "r", "l", "r", "r", "r", "r"),
                 caption="direction: + when positive-class predictions rise with the feature at a fixed label, - "
                         "when they fall (Mantel test p < 0.05 in every seed; OR: Mantel-Haenszel common odds ratio)")


def _curves(usage: pd.DataFrame) -> Figure:
    """CMI vs epoch per model for the features with the largest mean CMI."""
    usage = usage.assign(step=pd.to_numeric(usage["epoch"], errors="coerce"))
    last = usage["step"].max()
    usage.loc[usage["step"].isna(), "step"] = last + 1 if pd.notna(last) else 1
    top = usage.groupby("feature")["value"].mean().nlargest(MAX_CURVE_FEATURES).index
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    axes = fig.subplots(1, len(top), sharey=True, squeeze=False)[0]
    for ax, feature in zip(axes, top, strict=True):
        part = usage[usage["feature"] == feature]
        for model, rows in part.groupby("model"):
            mean = rows.groupby("step")["value"].mean()
            ax.plot(mean.index, mean.to_numpy(), marker="o", label=model)
        ax.set_title(feature, fontsize=8)
        ax.set_xlabel("epoch (last = best)", fontsize=7)
    axes[0].set_ylabel("corrected CMI (bits)")
    axes[-1].legend(fontsize=6)
    return fig


def _attention_vs_plain(table: pd.DataFrame, plain_of: dict[str, str]) -> Table | None:
    """Per attention model and feature: mean paired difference of corrected CMI to its planned plain model
    (``plain_of``), paired t-test p (Holm) and a verdict."""
    rows = []
    for model, part in table[table["model"].isin(list(plain_of))].groupby("model", sort=False):
        base = table[table["model"] == plain_of[model]]
        if base.empty:
            continue
        pairs = part.merge(base, on=["feature", "seed"], suffixes=("", "_plain"))
        found = []
        for feature, p in pairs.groupby("feature", sort=False):
            d = p["value"].to_numpy(float) - p["value_plain"].to_numpy(float)
            diff = paired_t(d[~np.isnan(d)])
            found.append([model, base["model"].iloc[0], feature, diff.n, float(diff.mean), float(diff.p)])
        adjusted = holm([r[-1] for r in found]) if found else []
        rows += [(m, b, f, str(n), f"{d:+.4f}", fmt.pvalue(p, ALPHA), fmt.pvalue(a, ALPHA), _verdict(m, d, a))
                 for (m, b, f, n, d, p), a in zip(found, adjusted, strict=True)]
    if not rows:
        return None
    return Table(("attention model", "plain backbone", "feature", "seeds", "corrected CMI difference", "p",
                  "p (Holm)", "verdict"), tuple(rows), ("l", "l", "l", "r", "r", "r", "r", "l"))


def _epoch_vs_kept(usage: pd.DataFrame, early: str) -> Table | None:
    """Per model and feature: kept-weights minus `early`-epoch corrected CMI, paired by seed, p (Holm), verdict."""
    rows = []
    for model, part in usage.groupby("model", sort=False):
        late = part[part["epoch"].isin(KEPT)]
        pairs = late.merge(part[part["epoch"] == early], on=["feature", "seed"], suffixes=("", "_early"))
        found = []
        for feature, p in pairs.groupby("feature", sort=False):
            d = p["value"].to_numpy(float) - p["value_early"].to_numpy(float)
            diff = paired_t(d[~np.isnan(d)])
            found.append([model, feature, diff.n, float(diff.mean), float(diff.p)])
        adjusted = holm([r[-1] for r in found]) if found else []
        rows += [(m, f, f"epoch {early}", str(n), f"{d:+.4f}", fmt.pvalue(p, ALPHA), fmt.pvalue(a, ALPHA),
                  _verdict(m, d, a))
                 for (m, f, n, d, p), a in zip(found, adjusted, strict=True)]
    if not rows:
        return None
    return Table(("model", "feature", "compared with", "seeds", "corrected CMI change", "p", "p (Holm)", "verdict"),
                 tuple(rows), ("l", "l", "l", "r", "r", "r", "r", "l"))


def _verdict(model: str, diff: float, p_holm: float) -> str:
    """A sentence on the paired difference: more / less usage at ALPHA (Holm), or no detectable difference."""
    if not np.isfinite(p_holm):
        return "not testable (fewer than 2 paired seeds)"
    if p_holm < ALPHA:
        return f"{model} uses it {'more' if diff > 0 else 'less'}"
    return "no detectable difference"


def _abcd_blocks(abcd: pd.DataFrame, dataset: str) -> list:
    """Per-class medians (IQR) of the ABCD features, and box plots of them by class."""
    features = [c for c in abcd.columns if c not in ("label", "split", "touches_edge")]
    rows = []
    for label, part in abcd.groupby("label"):
        cells = [f"{part[f].median():.3g} ({part[f].quantile(.25):.3g}-{part[f].quantile(.75):.3g})" for f in features]
        rows.append((str(label), str(len(part)), *cells))
    table = Table(("class", "images", *features), tuple(rows), ("l", "r", *("r",) * len(features)),
                  caption="ABCD features per class: median (interquartile range), all images")
    fig = Figure(figsize=(2.4 * len(features), 2.8), layout="constrained")
    axes = fig.subplots(1, len(features), squeeze=False)[0]
    labels = sorted(abcd["label"].unique())
    for ax, f in zip(axes, features, strict=True):
        ax.boxplot([abcd.loc[abcd["label"] == c, f].dropna() for c in labels], showfliers=False)
        ax.set_xticks(range(1, len(labels) + 1), labels, rotation=45, fontsize=7)
        ax.set_title(f, fontsize=8)
    edge = ""
    if "touches_edge" in abcd:
        edge = (f" {int(abcd['touches_edge'].astype(bool).sum())} of {len(abcd)} masks touch the image edge: their "
                "shape features describe the visible part of the lesion only. The features are computed at the "
                "loader's image size (see docs/features.md for their agreement with the stored masks).")
    return [Paragraph("ABCD features computed from the lesion masks and images (see `medattn.analysis.abcd` for "
                      "the definitions and the colour thresholds)." + edge), table,
            FigureBlock(f"abcd-by-class-{dataset}", fig, "ABCD features by class (boxes: quartiles, no outliers)")]


def shortcut_probe_section(ctx: ReportContext, dataset: str) -> Section | None:
    """The 'Shortcut probes' subsection of one dataset (None when `medattn probe` has not run)."""
    probes = _read(ctx, layout.PROBES)
    if probes is None or probes.empty or dataset not in set(probes["dataset"]):
        return None
    probes = probes[probes["dataset"] == dataset]
    rows = []
    for (model, probe, artefact), part in probes.groupby(["model", "probe", "artefact"], sort=False):
        cells = [seed_summary(part, c) for c in ("flip_rate", "delta_positive_prob", "delta_balanced_accuracy")]
        rows.append((model, probe, artefact, str(len(part)), *cells, f"{part['ood_gap'].mean():+.3f}"))
    table = Table(("model", "probe", "artefact", "seeds", "flip rate", "change of P(positive)",
                   "change of balanced accuracy", "ID - OOD gap"), tuple(rows), ("l", "l", "l", *("r",) * 5),
                  caption="one seed: value [95% interval: exact Clopper-Pearson for the flip rate, bootstrap over "
                          "images otherwise]; several seeds: mean [95% two-level bootstrap over seeds and the "
                          "shared images; t interval over seeds for balanced accuracy]")
    return Section("Shortcut probes").add(Paragraph(
        "An artefact (drawn by derm-synth's renderer; for a `shortcut=` dataset a real template pasted by its "
        "placement rules) is inserted into test images that lack it (insert), or filled in from its surroundings "
        "where artefact masks exist (remove). Inpainting alone changes images, so "
        "the sham arm inpaints artefact-shaped regions of clean images: a removal flip rate near the sham's says "
        "the artefact itself did not matter. A model that ignores the artefact flips few predictions; the "
        "balanced-accuracy gap between the in-distribution and the OOD test split is shown beside it."), table)


DATASET_SECTIONS.register("feature-usage", feature_usage_section, after="out-of-distribution")
DATASET_SECTIONS.register("shortcut-probes", shortcut_probe_section, after="feature-usage")
