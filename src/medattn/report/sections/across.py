"""The across-datasets section: attention-vs-plain differences side by side, average ranks, Friedman and
Nemenyi tests and the critical-difference diagram (numbers from :func:`medattn.stats.compare_across_datasets`).
"""

from __future__ import annotations

import itertools

from medattn.report import formatting as fmt
from medattn.report.context import ReportContext
from medattn.report.document import FigureBlock, Paragraph, Section, Table
from medattn.report.figures import cd_diagram
from medattn.report.formatting import VERDICT_LEGEND, VERDICT_MARKS, metric_label
from medattn.stats.compare import ATTENTION_VS_PLAIN


def differences_table(ctx: ReportContext) -> Table | None:
    """Return attention variant x dataset: mean difference to the plain backbone (pp) with a verdict mark."""
    t = ctx.comparisons()
    if t.empty:
        return None
    t = t[(t["kind"] == ATTENTION_VS_PLAIN) & (t["metric"] == ctx.settings.primary_metric)]
    if t.empty:
        return None
    datasets = ctx.run.datasets
    rows = []
    for (model, reference), block in t.groupby(["model", "reference"], sort=False):
        by_dataset = block.set_index("dataset")
        cells = [f"{model} vs {reference}"]
        for d in datasets:
            if d in by_dataset.index:
                row = by_dataset.loc[d]
                cells.append(f"{fmt.pp(row['mean_diff'])} ({VERDICT_MARKS.get(row['verdict'], '?')})")
            else:
                cells.append(fmt.NA)
        rows.append(tuple(cells))
    return Table(
        columns=("Comparison", *datasets),
        rows=tuple(rows),
        align=("l", *("r",) * len(datasets)),
        caption=f"Mean {metric_label(ctx.settings.primary_metric)} difference to the plain backbone (pp) per "
                f"dataset; verdict: {VERDICT_LEGEND}.",
    )


def across_sections(ctx: ReportContext) -> list[Section]:
    """Return the 'Across datasets' section (nothing for a single-dataset study)."""
    if len(ctx.run.datasets) < 2:
        return []
    section = Section("Across datasets")
    diffs = differences_table(ctx)
    if diffs is not None:
        section.add(diffs)
    result, note = ctx.cross_dataset
    if result is None:
        section.add(Paragraph(f"No rank-based comparison: {note}."))
        return [section]
    s = ctx.settings
    fr = result.friedman
    order = list(result.average_ranks.index)
    rows = []
    for dataset in result.scores.index:
        rows.append((str(dataset), *(f"{fmt.pct(result.scores.loc[dataset, m])} ({result.ranks.loc[dataset, m]:g})"
                                     for m in order)))
    rows.append(("**average rank**", *(f"**{result.average_ranks[m]:.2f}**" for m in order)))
    section.add(Table(
        columns=("Dataset", *order),
        rows=tuple(rows),
        align=("l", *("r",) * len(order)),
        caption=f"Mean {metric_label(s.primary_metric)} (%) on {s.split} and rank (1 = best) per dataset; "
                f"{note}.",
    ))
    differing = [(a, b) for a, b in itertools.combinations(order, 2)
                 if abs(result.average_ranks[a] - result.average_ranks[b]) > result.critical_difference]
    a = result.alpha
    text = (
        f"Friedman test over {fr.n_datasets} datasets and {fr.n_models} models (df {fr.df1}): tie-corrected "
        f"chi2_F = {fr.chi2:.2f}, p = {fmt.pvalue(fr.p_value, a)} (scipy); uncorrected chi2_F (Demsar 2006) = "
        f"{fr.chi2_uncorrected:.2f}, p = {fmt.pvalue(fr.p_uncorrected, a)}. Iman-Davenport F (df {fr.df1}, "
        f"{fr.df2}) = {fmt.number(fr.f_statistic)}, p = {fmt.pvalue(fr.p_f, a)} from the tie-corrected chi2_F, "
        f"{fmt.number(fr.f_uncorrected)}, p = {fmt.pvalue(fr.p_f_uncorrected, a)} from the uncorrected one. "
        f"Nemenyi critical difference at alpha = {a:g}: {result.critical_difference:.2f} average ranks; "
    )
    if differing:
        text += "pairs further apart than that: " + ", ".join(f"`{a}` vs `{b}`" for a, b in differing) + "."
    else:
        text += "no two models are further apart than that."
    if fr.n_datasets < 5:
        text += (f" With only {fr.n_datasets} datasets these rank tests have little power; read the per-dataset "
                 "comparisons first.")
    section.add(Paragraph(text))
    nemenyi = result.nemenyi_p.loc[order, order]
    section.add(Table(
        columns=("", *order),
        rows=tuple((m, *("" if m == n else fmt.pvalue(nemenyi.loc[m, n]) for n in order)) for m in order),
        align=("l", *("r",) * len(order)),
        caption="Nemenyi post-hoc p-values (scikit-posthocs).",
    ))
    section.add(FigureBlock(
        "across-datasets-cd-diagram",
        cd_diagram(result.average_ranks, result.nemenyi_p, critical_difference=result.critical_difference,
                   alpha=result.alpha),
        f"Critical-difference diagram: average rank over datasets (1 = best); models joined by a bar are not "
        f"significantly different (Nemenyi, alpha = {result.alpha:g}).",
    ))
    return [section]
