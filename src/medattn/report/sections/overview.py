"""The report's opening section: what was compared and the answer, one sentence per attention variant."""

from __future__ import annotations

from collections import Counter

from medattn.report import formatting as fmt
from medattn.report.context import ReportContext
from medattn.report.document import BulletList, Paragraph, Section
from medattn.report.formatting import metric_label
from medattn.stats import VERDICTS, describe_comparisons
from medattn.stats.compare import ATTENTION_VS_PLAIN

ONE_SEED = (" With one seed per model no seed interval exists: the spread between training runs, and with it "
            "every seed interval, paired test, effect size and verdict, needs at least 2 seeds (n/a below); the "
            "test-bootstrap interval shows test-set sampling noise only. Treat this as a smoke test and run more "
            "seeds for an answer.")


def study_name(ctx: ReportContext) -> str:
    """Return the study's name (study.json ``name``, else the results' ``study`` column, else the folder name)."""
    if ctx.run.study.get("name"):
        return str(ctx.run.study["name"])
    if "study" in ctx.results.columns and ctx.results["study"].notna().any():
        return str(ctx.results["study"].dropna().iloc[0])
    return ctx.run.run_dir.resolve().name


def overview_sections(ctx: ReportContext) -> list[Section]:
    """Return the 'Answer' section: study size, then every attention-vs-plain verdict on the primary metric."""
    r = ctx.results
    s = ctx.settings
    seeds = r.groupby(["dataset", "model"])["seed"].nunique()
    seed_text = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}-{seeds.max()}"
    intro = Paragraph(
        f"Study `{study_name(ctx)}`: {r['model'].nunique()} models on {len(ctx.run.datasets)} dataset(s) "
        f"({', '.join(f'`{d}`' for d in ctx.run.datasets)}), {seed_text} seeds per model. Primary metric: "
        f"{metric_label(s.primary_metric)} on the {s.split} split; differences are tested paired by seed with "
        f"Holm's correction (alpha = {s.alpha:g}) and a region of practical equivalence of "
        f"+-{fmt.pct(s.rope)} pp."
        + (ONE_SEED if seeds.min() < 2 else "")
    )
    table = ctx.comparisons()
    primary = table[table["metric"] == s.primary_metric] if not table.empty else table
    main = primary[primary["kind"] == ATTENTION_VS_PLAIN] if not primary.empty else primary
    if main.empty:
        main = primary
    section = Section("Answer", [intro])
    if main.empty:
        section.add(Paragraph("No comparison could be made: the results hold no attention variant together with its "
                              "plain backbone and no baseline."))
        return [section]
    counts = Counter(main["verdict"])
    tally = ", ".join(f"{v}: {counts[v]}" for v in VERDICTS if counts[v])
    what = "attention-vs-plain" if (main["kind"] == ATTENTION_VS_PLAIN).all() else "model-vs-baseline"
    section.add(
        Paragraph(f"{len(main)} {what} comparison(s) on {metric_label(s.primary_metric)}: {tally}."),
        BulletList(tuple(describe_comparisons(main))),
    )
    return [section]
