"""The comparison part of a dataset's section: one verdict sentence per comparison, the full comparison
table (seed t interval beside the test-set bootstrap interval), secondary metrics, and the
out-of-distribution gap. Every number comes from :func:`medattn.stats.compare_models`'s table.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from medattn.report import formatting as fmt
from medattn.report.context import ReportContext
from medattn.report.document import BulletList, Paragraph, Section, Table
from medattn.report.formatting import METRIC_LABELS, VERDICT_LEGEND, VERDICT_MARKS, metric_label
from medattn.rundir.metrics import higher_is_better
from medattn.stats import describe_comparisons, paired_difference
from medattn.stats.compare import VS_BEST_BASELINE, reference_baselines
from medattn.stats.verdict import is_plain_significant


def _rows(ctx: ReportContext, dataset: str, split: str, primary: bool) -> pd.DataFrame:
    """Return the comparison rows of ``dataset`` on ``split``: the primary metric, or all the others."""
    table = ctx.comparisons(split)
    if table.empty:
        return table
    is_primary = table["metric"] == ctx.settings.primary_metric
    return table[(table["dataset"] == dataset) & (is_primary if primary else ~is_primary)]


def verdict_sentences(ctx: ReportContext, dataset: str, split: str | None = None) -> list[str]:
    """Return the stats library's sentence for every primary-metric comparison of ``dataset``."""
    return describe_comparisons(_rows(ctx, dataset, split or ctx.settings.split, primary=True))


def wilcoxon_cell(row: pd.Series, alpha: float) -> str:
    """Return p_W, with the smallest p the exact test could give when that cannot reach ``alpha``."""
    text = fmt.pvalue(row["p_wilcoxon"], alpha)
    floor = row.get("p_wilcoxon_min", np.nan)
    return f"{text} (min {fmt.pvalue(floor, alpha)})" if np.isfinite(floor) and floor >= alpha else text


def baseline_choice(ctx: ReportContext, dataset: str, split: str) -> str:
    """Return the split the best baseline of ``dataset`` was chosen on (validation unless it had none)."""
    _, fell_back = reference_baselines(ctx.results, split=split, metric=ctx.settings.primary_metric)
    return split if dataset in fell_back else "val"


def comparison_table(ctx: ReportContext, dataset: str, split: str | None = None) -> Table | None:
    """Return the full primary-metric comparison table of ``dataset``, with the test-set bootstrap interval."""
    split = split or ctx.settings.split
    rows = _rows(ctx, dataset, split, primary=True)
    if rows.empty:
        return None
    level = f"{100 * ctx.settings.confidence:g}%"
    alpha, cut = ctx.settings.alpha, ctx.settings.equiv_prob
    cells = []
    for _, r in rows.iterrows():
        boot = ctx.bootstrap(dataset, r["model"], r["reference"], split)
        cells.append((
            f"{r['model']} vs {r['reference']}",
            str(int(r["n"])),
            fmt.pp(r["mean_diff"]),
            fmt.interval_pp(r["ci_low"], r["ci_high"]),
            fmt.NA if boot is None else fmt.interval_pp(boot.ci_low, boot.ci_high),
            fmt.pvalue(r["p_t"], alpha),
            wilcoxon_cell(r, alpha),
            fmt.pvalue(r["p_holm"], alpha),
            fmt.number(r["effect_size"]),
            fmt.prob(r["p_worse"], cut),
            fmt.prob(r["p_equiv"], cut),
            fmt.prob(r["p_better"], cut),
            fmt.pct(r["mdd"]),
            f"**{r['verdict']}**" if is_plain_significant(r["verdict"]) else str(r["verdict"]),
        ))
    baseline = rows.loc[rows["kind"] == VS_BEST_BASELINE, "reference"]
    m = int(rows["holm_family_size"].max()) if "holm_family_size" in rows else 1
    caption = (
        f"{metric_label(ctx.settings.primary_metric, capital=True)} on {split}, model - reference in percentage "
        f"points, paired by seed. {level} CI (seeds): t interval over seeds, not adjusted for multiple comparisons "
        f"(training noise on this split and test set). {level} CI (test bootstrap): the same seed-averaged "
        f"difference with the test samples resampled within each class ({ctx.settings.n_boot} resamples shared by "
        f"all seeds; test-set sampling noise). p_t paired t (exact sign-flip p when all differences are equal), "
        f"p_W Wilcoxon signed-rank (exact; it cannot reach p < {alpha:g} with fewer than "
        f"{math.floor(1 - math.log2(alpha)) + 1} seeds: 'min' is the smallest p it could give, 2/2^n), "
        f"p_Holm Holm-adjusted p_t; d_z Cohen's effect size; "
        f"P(worse/equiv/better): posterior probability that the mean difference lies below, inside or above the "
        f"ROPE of +-{fmt.pct(ctx.settings.rope)} pp; MDD: smallest difference detectable with "
        f"{100 * ctx.settings.power:g}% power at alpha/m = {alpha:g}/{max(m, 1)} (Holm's first step), from the "
        f"observed spread of the seeds."
    )
    if int(rows["n"].max()) < 2:
        caption += (" One paired seed: no seed interval exists (no spread between training runs to estimate it "
                    "from), so the seed CI, tests, effect size, posterior probabilities and MDD are n/a; the "
                    "test-bootstrap interval covers test-set sampling noise only.")
    if len(baseline):
        chosen = baseline_choice(ctx, dataset, split)
        caption += (f" Best baseline (highest mean {metric_label(ctx.settings.primary_metric)} on the {chosen} "
                    f"split): {baseline.iloc[0]}.")
    return Table(
        columns=("Comparison", "n", "Diff (pp)", f"{level} CI seeds (unadjusted)", f"{level} CI test bootstrap",
                 "p_t", "p_W", "p_Holm", "d_z", "P(worse)", "P(equiv)", "P(better)", "MDD (pp)", "Verdict"),
        rows=tuple(cells),
        align=("l", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r", "l"),
        caption=caption,
    )


def secondary_table(ctx: ReportContext, dataset: str, split: str | None = None) -> Table | None:
    """Return comparison x secondary metric (AUC, macro F1, accuracy, ECE): difference, seed CI and verdict."""
    split = split or ctx.settings.split
    rows = _rows(ctx, dataset, split, primary=False)
    if rows.empty:
        return None
    metrics = list(dict.fromkeys(m for m in METRIC_LABELS if m in set(rows["metric"])))
    metrics += sorted(set(rows["metric"]) - set(metrics))
    by_key = {(r["model"], r["reference"], r["metric"]): r for _, r in rows.iterrows()}
    pairs = list(dict.fromkeys(zip(rows["model"], rows["reference"], strict=True)))
    cells = []
    for model, reference in pairs:
        line = [f"{model} vs {reference}"]
        for metric in metrics:
            r = by_key.get((model, reference, metric))
            if r is None:
                line.append(fmt.NA)
                continue
            ci = fmt.interval_pp(r["ci_low"], r["ci_high"])
            line.append(f"{fmt.pp(r['mean_diff'])} {ci} ({VERDICT_MARKS.get(r['verdict'], '?')})")
        cells.append(tuple(line))
    return Table(
        columns=("Comparison", *(metric_label(m, capital=True) + ("" if higher_is_better(m) else " (lower is better)")
                                 for m in metrics)),
        rows=tuple(cells),
        align=("l", *("r",) * len(metrics)),
        caption=f"Secondary metrics on {split}: mean difference (pp) [{100 * ctx.settings.confidence:g}% CI over "
                f"seeds] and verdict (Holm correction within each metric): {VERDICT_LEGEND}. For ECE a gain is a "
                "negative difference. All columns of every comparison are in comparisons.csv.",
    )


def comparisons_section(ctx: ReportContext, dataset: str) -> Section | None:
    """Return the 'Comparisons' subsection of ``dataset``: sentences, comparison table, secondary metrics."""
    sentences = verdict_sentences(ctx, dataset)
    if not sentences:
        return Section("Comparisons", [Paragraph(
            "No comparison could be made: there is no attention variant with its plain backbone, and no "
            "baseline, evaluated on this dataset.")])
    section = Section("Comparisons", [BulletList(tuple(sentences))])
    for table in (comparison_table(ctx, dataset), secondary_table(ctx, dataset)):
        if table is not None:
            section.add(table)
    return section


def ood_gap_table(ctx: ReportContext, dataset: str, split: str) -> Table | None:
    """Return per model: test and ``split`` primary metric (mean ± sd) and their paired difference over seeds."""
    r = ctx.results
    metric = ctx.settings.primary_metric
    sub = r[(r["dataset"] == dataset) & (r["metric"] == metric) & r["split"].isin([ctx.settings.split, split])]
    if sub.empty or not (sub["split"] == split).any():
        return None
    wide = sub.pivot_table(index=["model", "seed"], columns="split", values="value", aggfunc="first")
    level = f"{100 * ctx.settings.confidence:g}%"
    cells = []
    for model in ctx.run.models(dataset):
        if model not in wide.index.get_level_values("model"):
            continue
        block = wide.loc[model]
        test = block.get(ctx.settings.split, pd.Series(dtype=float)).to_numpy(float)
        ood = block.get(split, pd.Series(dtype=float)).to_numpy(float)
        if not len(test) or not len(ood):
            continue
        res = paired_difference(ood, test, confidence=ctx.settings.confidence)
        cells.append((
            model,
            fmt.mean_sd(np.nanmean(test), np.nanstd(test, ddof=1) if np.sum(~np.isnan(test)) > 1 else np.nan),
            fmt.mean_sd(np.nanmean(ood), np.nanstd(ood, ddof=1) if np.sum(~np.isnan(ood)) > 1 else np.nan),
            fmt.pp(res.mean_diff),
            fmt.interval_pp(res.ci_low, res.ci_high),
            fmt.pvalue(res.p_t),
            str(res.n),
        ))
    if not cells:
        return None
    return Table(
        columns=("Model", f"{ctx.settings.split} (%)", f"{split} (%)", "Gap (pp)", f"{level} CI", "p_t", "n"),
        rows=tuple(cells),
        align=("l", "r", "r", "r", "r", "r", "r"),
        caption=f"{metric_label(metric)} on {ctx.settings.split} and on {split} (mean ± sd over seeds); gap = "
                f"{split} - {ctx.settings.split}, paired by seed, with its t interval and paired t test (uncorrected).",
    )


def ood_section(ctx: ReportContext, dataset: str) -> Section | None:
    """Return the out-of-distribution subsection of ``dataset`` (None when it has no extra split)."""
    splits = ctx.run.extra_splits(dataset)
    if not splits:
        return None
    section = Section("Out-of-distribution")
    for split in splits:
        sub = Section(f"Split {split}")
        gap = ood_gap_table(ctx, dataset, split)
        if gap is not None:
            sub.add(gap)
        sentences = verdict_sentences(ctx, dataset, split)
        if sentences:
            sub.add(Paragraph(f"The comparisons repeated on {split} (Holm correction over the {split} comparisons):"),
                    BulletList(tuple(sentences)))
            table = comparison_table(ctx, dataset, split)
            if table is not None:
                sub.add(table)
        if sub.blocks:
            section.subsections.append(sub)
    return section if section.subsections else None
