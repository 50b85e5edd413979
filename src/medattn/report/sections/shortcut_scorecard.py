"""Report section "Shortcut detector scorecard": where a study's datasets plant a known artefact (real artefacts
via `shortcut=`, or derm-synth) at a strong correlation and at 0.5, how often each detector flags the runs of
each (detection rate, false-alarm rate), with exact intervals, overall and per model; before them the study's
answer: per model, the insertion probe's change of P(positive) and the ID - OOD gap at each correlation (t
intervals over seeds), and per attention variant its difference to the plain backbone, paired by seed.

The numbers are `medattn.analysis.scorecard` (the same as `medattn scorecard RUN_DIR`, which also writes them as
CSV and pools several studies). Nothing is shown for a study without such datasets.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from medattn.analysis.scorecard import ScorecardOptions, run_flags, scorecard
from medattn.errors import DataError
from medattn.report.context import ReportContext
from medattn.report.document import Paragraph, Section, Table
from medattn.report.registry import REPORT_SECTIONS
from medattn.stats.interval import mean_t_interval


def _cell(row: dict, label: str) -> str:
    """'k/n = rate [low, high]', or '-' without runs."""
    n = row[f"{label}_runs"]
    if not n:
        return "-"
    return (f"{row[f'{label}_flagged']}/{n} = {row[f'{label}_rate']:.2f} "
            f"[{row[f'{label}_low']:.2f}, {row[f'{label}_high']:.2f}]")


def _check(row: dict) -> str:
    bound = row["false_alarm_bound"]
    if bound is None or np.isnan(bound):
        return "-"
    return f"{bound:.3f}: {'within' if row['false_alarm_ok'] else 'exceeded'}"


def scorecard_table(card: pd.DataFrame, caption: str) -> Table:
    """Detector rows: detection at the shortcut, false alarms at the control, the nominal + 2 MC SE check."""
    rows = tuple((r["detector"], _cell(r, "detection"), _cell(r, "false_alarm"), _check(r),
                  _cell(r, "detection_given_gap")) for r in card.to_dict("records"))
    return Table(("detector", "detection (shortcut datasets)", "false alarms (0.5 datasets)",
                  "nominal + 2 MC SE", "detection where the ID - OOD gap flags"), rows, ("l", "r", "r", "r", "r"),
                 caption)


def _mean_ci(values: np.ndarray) -> str:
    """'mean [95 % t interval over seeds]' ('mean (1 seed)' for one value)."""
    m = mean_t_interval(values)
    if m.n < 2:
        return "-" if not m.n else f"{m.mean:+.3f} (1 seed)"
    return f"{m.mean:+.3f} [{m.ci_low:+.3f}, {m.ci_high:+.3f}]"


def _per_seed(flags: pd.DataFrame, detector: str) -> pd.Series:
    """A detector's value per (role, model, seed), mean over its artefacts."""
    part = flags[flags["detector"] == detector]
    return part.groupby(["role", "model", "seed"])["value"].mean()


ANSWER_MEASURES = {"insert_probe": "insertion: change of P(positive)", "ood_gap": "ID - OOD gap"}
ROLES = ("shortcut", "control")


def answer_table(flags: pd.DataFrame, references: dict[str, str]) -> Table | None:
    """Per model (and per attention variant minus its plain backbone, paired by seed): the insertion probe's change
    of P(positive) and the ID - OOD gap at the shortcut and at the control, mean [95 % t interval over seeds]."""
    measures = {d: _per_seed(flags, d) for d in ANSWER_MEASURES if (flags["detector"] == d).any()}
    if not measures:
        return None
    rows = []
    for model in sorted(flags["model"].unique()):
        ref = references.get(model)
        for label, minus in ((model, None), *([(f"{model} - {ref}", ref)] if ref else [])):
            cells = []
            for values in measures.values():
                for role in ROLES:
                    own = values.get((role, model), pd.Series(dtype=float))
                    if minus is not None:
                        own = (own - values.get((role, minus), pd.Series(dtype=float))).dropna()
                    cells.append(_mean_ci(own.to_numpy(float)))
            rows.append((label, *cells))
    header = [f"{ANSWER_MEASURES[d]} at the {role}" for d in measures for role in ROLES]
    return Table(("model", *header), tuple(rows), ("l", *("r",) * len(header)),
                 "mean [95 % t interval over seeds]; 'A - B': attention variant minus its plain backbone, paired by "
                 "seed. An interval of the variant's difference that covers 0 says attention did not detectably "
                 "change how much the model relies on the artefact.")


def scorecard_sections(ctx: ReportContext) -> list[Section]:
    """The scorecard section (empty when no dataset of the study plants a known artefact)."""
    opts = ScorecardOptions()
    try:
        flags = run_flags(ctx.run.run_dir, opts)
    except DataError:
        return []
    if flags.empty:
        return []
    section = Section("Shortcut detector scorecard", anchor="shortcut-scorecard")
    roles = flags.drop_duplicates("dataset").set_index("dataset")
    described = ", ".join(f"{d} ({r['role']}, correlation {r['corr']:g})" for d, r in roles.iterrows())
    section.add(Paragraph(
        f"The datasets plant a known artefact: {described}. A run is flagged by a detector when it says the model "
        f"uses the artefact: the usage test of the artefact's presence column (p < {opts.alpha}, Holm across the "
        f"planted artefacts of the run, not across the metadata features of the usage table), the "
        f"insertion and removal probes (p < {opts.alpha} for a zero change of P(positive), read from the probe's "
        f"bootstrap interval; `*_vs_control`: the probe's effect against the control runs' effects, a t prediction "
        f"interval, since a model trained without the shortcut may respond to the artefact too), the ID - OOD "
        f"balanced-accuracy gap (>= {opts.gap:.2f}) and the explanation energy on "
        f"the artefact above a uniform map's (one-sided Wilcoxon p < {opts.alpha}). Where the artefact goes with "
        f"the class a flag is a detection; at correlation 0.5 it is a false alarm. Rates with exact "
        f"(Clopper-Pearson) 95 % intervals; a test's false-alarm rate should stay within its nominal rate plus "
        f"2 Monte-Carlo standard errors. The last column counts only the shortcut runs whose ID - OOD gap "
        f"shows they learned the shortcut. `medattn scorecard RUN_DIR...` writes these tables as CSV and pools "
        f"studies."))
    results = ctx.results
    references = ({} if "reference" not in results else
                  results.dropna(subset=["reference"]).drop_duplicates("model").set_index("model")["reference"]
                  .astype(str).to_dict())
    answer = answer_table(flags, references)
    if answer is not None:
        section.add(Paragraph(
            "Does the model use the artefact, and does attention change that? The insertion probe's change of "
            "P(positive) where the artefact is pasted in, and the ID - OOD gap, where the artefact goes with the "
            "class (shortcut) and where it does not (control): a model that uses the artefact shows both at the "
            "shortcut and neither at the control."))
        section.add(answer)
    section.add(scorecard_table(scorecard(flags, opts.alpha), "All models and seeds"))
    for model, part in flags.groupby("model", sort=True):
        section.subsections.append(Section(f"Model {model}", [scorecard_table(scorecard(part, opts.alpha),
                                                                              f"{model}, over seeds")]))
    return [section]


if "shortcut-scorecard" not in REPORT_SECTIONS.names():
    REPORT_SECTIONS.register("shortcut-scorecard", scorecard_sections,
                             before="methods" if "methods" in REPORT_SECTIONS.names() else None)
