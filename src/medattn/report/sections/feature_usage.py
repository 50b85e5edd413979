"""Report sections "Feature usage" and "Shortcut probes", built from RUN_DIR/features/ (see medattn.analysis).

Feature usage: a models x features heatmap of the conditional mutual information (bits) at the final weights,
marked where the corrected p-value is below 0.05 in every seed; usage curves over the saved epochs; for each
attention variant vs its plain backbone, the per-feature CMI difference paired over seeds (paired t-test of
`medattn.stats.paired_t`, which gives constant differences their exact sign-flip p; Holm across features); and,
where ABCD features exist, their distribution per class. Shortcut probes: flip rate, change of the positive-class
probability and of balanced accuracy per model and artefact, beside the ID - OOD gap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from medattn.report import formatting as fmt
from medattn.report.context import ReportContext
from medattn.report.document import FigureBlock, Paragraph, Section, Table
from medattn.report.registry import DATASET_SECTIONS
from medattn.rundir import layout
from medattn.rundir.table import model_roles, plain_references
from medattn.stats.correction import holm
from medattn.stats.paired import paired_t

ALPHA = 0.05
MAX_CURVE_FEATURES = 6


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
    section.add(Paragraph(
        "Does a model's prediction depend on a feature beyond the true label? Per model, seed and feature: the "
        "conditional G-test of H0: predicted class independent of feature given label (Reimers et al. 2020), "
        "with a within-label permutation test when the table is sparse; p-values corrected across features "
        f"({correction}); effect size: conditional mutual information (CMI, bits). Continuous features are "
        "binned in quartiles. `*`: corrected p < 0.05 in every seed."))
    final = usage[usage["epoch"] == "final"] if (usage["epoch"] == "final").any() else usage
    section.add(FigureBlock(f"feature-usage-{dataset}", _heatmap(final), f"CMI (bits) of each model x feature on "
                                                                        f"{dataset}, mean over seeds"))
    section.add(_usage_table(final))
    epochs = [e for e in usage["epoch"].unique() if e != "final"]
    if epochs:
        section.add(FigureBlock(f"feature-usage-curves-{dataset}", _curves(usage),
                                "CMI (bits) vs saved epoch, mean over seeds (most used features)"))
    paired = _attention_vs_plain(final, plain_references(model_roles(ctx.results[ctx.results["dataset"] == dataset])))
    if paired is not None:
        section.add(Paragraph("Does attention change which features are used? Per attention variant, the CMI "
                              "difference to its plain backbone, paired by seed (paired t-test, Holm across "
                              "features):"), paired)
    abcd = _read(ctx, layout.abcd_name(dataset))
    if abcd is not None:
        section.add(*_abcd_blocks(abcd, dataset))
    return section


def _heatmap(table: pd.DataFrame) -> Figure:
    """Models x features heatmap of mean CMI with '*' where every seed's corrected p < ALPHA."""
    cmi = table.pivot_table(index="model", columns="feature", values="cmi_bits", aggfunc="mean")
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
    fig.colorbar(image, ax=ax, label="CMI (bits)")
    return fig


def _usage_table(table: pd.DataFrame) -> Table:
    """Per model and feature: mean CMI with the widest bootstrap CI, seeds significant / seeds, median n."""
    rows = []
    for (model, feature), part in table.groupby(["model", "feature"], sort=False):
        rows.append((model, feature, f"{part['cmi_bits'].mean():.4f}",
                     f"[{part['cmi_low'].min():.4f}, {part['cmi_high'].max():.4f}]",
                     f"{int((part['p_adjusted'] < ALPHA).sum())}/{len(part)}",
                     fmt.pvalue(part['p_adjusted'].max(), ALPHA),
                     f"{int(part['n'].median())}", f"{int(part['n_missing'].max())}"))
    return Table(("model", "feature", "CMI (bits)", "95% CI (bootstrap)", "used (seeds)", "max corrected p", "n",
                  "missing"), tuple(rows), ("l", "l", "r", "r", "r", "r", "r", "r"))


def _curves(usage: pd.DataFrame) -> Figure:
    """CMI vs epoch per model for the features with the largest mean CMI."""
    usage = usage.assign(step=pd.to_numeric(usage["epoch"], errors="coerce"))
    last = usage["step"].max()
    usage.loc[usage["step"].isna(), "step"] = last + 1 if pd.notna(last) else 1
    top = usage.groupby("feature")["cmi_bits"].mean().nlargest(MAX_CURVE_FEATURES).index
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    axes = fig.subplots(1, len(top), sharey=True, squeeze=False)[0]
    for ax, feature in zip(axes, top, strict=True):
        part = usage[usage["feature"] == feature]
        for model, rows in part.groupby("model"):
            mean = rows.groupby("step")["cmi_bits"].mean()
            ax.plot(mean.index, mean.to_numpy(), marker="o", label=model)
        ax.set_title(feature, fontsize=8)
        ax.set_xlabel("epoch (last = final)", fontsize=7)
    axes[0].set_ylabel("CMI (bits)")
    axes[-1].legend(fontsize=6)
    return fig


def _attention_vs_plain(table: pd.DataFrame, plain_of: dict[str, str]) -> Table | None:
    """Per attention model and feature: mean paired CMI difference to its planned plain model (``plain_of``),
    paired t-test p (Holm)."""
    rows = []
    for model, part in table[table["model"].isin(list(plain_of))].groupby("model", sort=False):
        base = table[table["model"] == plain_of[model]]
        if base.empty:
            continue
        pairs = part.merge(base, on=["feature", "seed"], suffixes=("", "_plain"))
        found = []
        for feature, p in pairs.groupby("feature", sort=False):
            d = p["cmi_bits"].to_numpy(float) - p["cmi_bits_plain"].to_numpy(float)
            diff = paired_t(d[~np.isnan(d)])
            found.append([model, base["model"].iloc[0], feature, diff.n, float(diff.mean), float(diff.p)])
        adjusted = holm([r[-1] for r in found]) if found else []
        rows += [(m, b, f, str(n), f"{d:+.4f}", fmt.pvalue(p, ALPHA), fmt.pvalue(a, ALPHA))
                 for (m, b, f, n, d, p), a in zip(found, adjusted, strict=True)]
    if not rows:
        return None
    return Table(("attention model", "plain backbone", "feature", "seeds", "CMI difference", "p", "p (Holm)"),
                 tuple(rows), ("l", "l", "l", "r", "r", "r", "r"))


def _abcd_blocks(abcd: pd.DataFrame, dataset: str) -> list:
    """Per-class medians (IQR) of the ABCD features, and box plots of them by class."""
    features = [c for c in abcd.columns if c not in ("label", "split")]
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
    return [Paragraph("ABCD features computed from the lesion masks and images (see `medattn.analysis.abcd` for "
                      "the definitions and the colour thresholds):"), table,
            FigureBlock(f"abcd-by-class-{dataset}", fig, "ABCD features by class (boxes: quartiles, no outliers)")]


def shortcut_probe_section(ctx: ReportContext, dataset: str) -> Section | None:
    """The 'Shortcut probes' subsection of one dataset (None when `medattn probe` has not run)."""
    probes = _read(ctx, layout.PROBES)
    if probes is None or probes.empty or dataset not in set(probes["dataset"]):
        return None
    probes = probes[probes["dataset"] == dataset]
    rows = []
    for (model, probe, artefact), part in probes.groupby(["model", "probe", "artefact"], sort=False):
        cells = [f"{part[c].mean():+.3f} [{part[c + '_low'].min():+.3f}, {part[c + '_high'].max():+.3f}]"
                 for c in ("flip_rate", "delta_positive_prob", "delta_balanced_accuracy")]
        rows.append((model, probe, artefact, str(len(part)), *cells, f"{part['ood_gap'].mean():+.3f}"))
    table = Table(("model", "probe", "artefact", "seeds", "flip rate", "change of P(positive)",
                   "change of balanced accuracy", "ID - OOD gap"), tuple(rows), ("l", "l", "l", *("r",) * 5),
                  caption="mean over seeds [smallest lower, largest upper 95% bootstrap bound over seeds]")
    return Section("Shortcut probes").add(Paragraph(
        "An artefact drawn with derm-synth's renderer is inserted into test images that lack it (insert), or "
        "filled in from its surroundings where artefact masks exist (remove). A model that ignores the artefact "
        "flips few predictions; the balanced-accuracy gap between the in-distribution and the OOD test split "
        "is shown beside it."), table)


DATASET_SECTIONS.register("feature-usage", feature_usage_section, after="out-of-distribution")
DATASET_SECTIONS.register("shortcut-probes", shortcut_probe_section, after="feature-usage")
