"""Report section 'Clinician survey': preference, relevance scores and agreement from the survey export.

Reads ``RUN_DIR/survey/answers.csv``, the de-blinded export that ``medattn survey analyze SURVEY.db``
writes there by default (one row per rater x image x rated map), and recomputes every statistic with
:func:`medattn.survey.analyze.analyze_answers`. Without that file the report has no survey section.
"""

from __future__ import annotations

import math

import pandas as pd
from matplotlib.figure import Figure

from medattn.errors import SurveyError
from medattn.report import formatting as fmt
from medattn.report.context import ReportContext
from medattn.report.document import FigureBlock, Paragraph, Section, Table
from medattn.report.registry import REPORT_SECTIONS
from medattn.rundir import layout
from medattn.survey.analyze import MIN_RATERS, SurveyAnalysis, analyze_answers

ANSWERS = (layout.SURVEY, layout.SURVEY_ANSWERS)


def _num(value: float, digits: int = 2) -> str:
    """Return ``value`` with ``digits`` decimals ('n/a' for NaN)."""
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def preference_table(result: SurveyAnalysis) -> Table:
    """Return win rate, Bradley-Terry strength and mean relevance score per map, best first."""
    merged = (result.bradley_terry.merge(result.win_rates, on="arm")
              .merge(result.likert, on="arm", suffixes=("", "_score")))
    rows = tuple((f"`{r.arm}`", f"{r.win_rate:.1%} [{r.ci_low:.1%}, {r.ci_high:.1%}]", f"{int(r.wins)}/{int(r.shown)}",
                  _num(r.strength), f"{r.choice_share:.1%}",
                  f"{r.mean:.2f} [{_num(r.ci_low_score)}, {_num(r.ci_high_score)}]")
                 for r in merged.itertuples())
    return Table(("map (model/method)", "chosen best (95% CI)", "wins/shown", "Bradley-Terry strength",
                  "choice share", "mean relevance 1-5 (95% CI)"), rows, ("l", "r", "r", "r", "r", "r"),
                 caption="Win rate: share of answers choosing this map as best (95% interval clustered by rater: "
                         "cluster-robust CR1, t with raters - 1 df). Bradley-Terry "
                         "(choix ilsr_top1) log-strengths from the forced choices; choice share = its softmax.")


def paired_table(result: SurveyAnalysis) -> Table | None:
    """Return each attention variant's relevance score vs its plain backbone (None without pairs)."""
    if result.paired.empty:
        return None
    rows = tuple((f"`{r.arm}`", f"`{r.reference}`", f"{r.n} ({r.raters} raters)",
                  f"{r.mean_diff:+.2f} [{_signed(r.ci_low)}, {_signed(r.ci_high)}]",
                  _p(r.p_wilcoxon), _p(r.p_holm)) for r in result.paired.itertuples())
    return Table(("attention map", "plain backbone", "pairs", "score difference (95% CI)", "p (Wilcoxon, raters)",
                  "p (Holm)"), rows, ("l", "l", "r", "r", "r", "r"),
                 caption="Paired by rater and image (same explanation method); interval clustered by rater; "
                         "Wilcoxon signed-rank test of the raters' mean differences ('too few raters' below "
                         f"{MIN_RATERS}).")


def _signed(value: float) -> str:
    """Return ``value`` with a sign and 2 decimals ('n/a' for NaN)."""
    return "n/a" if value is None or math.isnan(value) else f"{value:+.2f}"


def _p(value: float) -> str:
    """Return a p-value, or 'too few raters' where it was withheld (NaN)."""
    return "too few raters" if value is None or math.isnan(value) else fmt.pvalue(value)


def agreement_table(result: SurveyAnalysis) -> Table:
    """Return the inter-rater agreement measures."""
    names = {"krippendorff_alpha_ordinal_scores": "Krippendorff's alpha, relevance scores (ordinal)",
             "krippendorff_alpha_nominal_best": "Krippendorff's alpha, best-map choice (nominal)",
             "kendall_w_scores": "Kendall's W, relevance scores"}
    rows = tuple((names[r.measure], f"{_num(r.value, 3)} [{_num(r.ci_low, 3)}, {_num(r.ci_high, 3)}]", str(r.raters),
                  str(r.units)) for r in result.agreement.itertuples())
    return Table(("measure", "value (95% CI)", "raters", "units"), rows, ("l", "r", "r", "r"),
                 caption="Percentile bootstrap intervals over units (images, or image x map), 500 resamples.")


def experience_table(result: SurveyAnalysis) -> Table:
    """Return win rate and mean score per map within each experience band."""
    rows = tuple((r.experience, f"`{r.arm}`", str(r.raters), f"{r.win_rate:.1%}", f"{r.mean_score:.2f}")
                 for r in result.by_experience.itertuples())
    return Table(("experience", "map", "raters", "chosen best", "mean relevance"), rows, ("l", "l", "r", "r", "r"))


def win_rate_figure(result: SurveyAnalysis) -> FigureBlock:
    """Return a horizontal bar chart of win rates with their intervals."""
    table = result.win_rates.sort_values("win_rate")
    fig = Figure(figsize=(6.4, 0.5 * len(table) + 1.2))
    ax = fig.add_subplot()
    errors = [table["win_rate"] - table["ci_low"], table["ci_high"] - table["win_rate"]]
    ax.barh(table["arm"], table["win_rate"], xerr=errors, color="#4c78a8", capsize=3)
    ax.axvline(1 / len(table), color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xlabel("share of answers choosing the map as best")
    ax.set_xlim(0, 1)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return FigureBlock("survey-win-rates", fig,
                       "Best-map choices per map with 95% intervals clustered by rater; dashed: chance.")


def survey_sections(ctx: ReportContext) -> list[Section]:
    """Return the 'Clinician survey' section, or nothing when RUN_DIR/survey/answers.csv is absent."""
    path = ctx.run.run_dir.joinpath(*ANSWERS)
    if not path.is_file():
        return []
    try:
        result = analyze_answers(pd.read_csv(path, keep_default_na=False), source=str(path))
    except SurveyError as exc:
        return [Section("Clinician survey", [Paragraph(f"The survey export could not be analysed: {exc}")])]
    section = Section("Clinician survey", [
        Paragraph(f"{result.n_raters} raters judged {result.n_items} images ({result.n_answers} answers, from "
                  f"`{'/'.join(ANSWERS)}`). For each image they chose the map that best highlights the clinically "
                  "relevant regions and rated every map's relevance from 1 to 5, blinded to the models."),
        preference_table(result), win_rate_figure(result)])
    if result.note:
        section.add(Paragraph(f"{result.note[0].upper()}{result.note[1:]} ({result.n_raters} so far)."))
    if result.friedman:
        f = result.friedman
        section.add(Paragraph(f"Friedman test of the relevance scores across maps ({f['blocks']} raters as blocks, "
                              f"{f['arms']} maps): chi2 = {f['chi2']:.2f}, p = {fmt.pvalue(f['p_value'])}."))
    paired = paired_table(result)
    if paired is not None:
        section.add(paired)
    section.subsections.append(Section("Agreement between raters", [agreement_table(result)]))
    section.subsections.append(Section("By rater experience", [experience_table(result)]))
    return [section]


if "survey" not in REPORT_SECTIONS.names():
    REPORT_SECTIONS.register("survey", survey_sections, before="methods" if "methods" in REPORT_SECTIONS.names()
                             else None)
