"""The 'Clinician survey' report section: discovered as a plugin, built from RUN_DIR/survey/answers.csv."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from medattn.report.document import Document
from medattn.report.layout import REPORT_SECTIONS, load_section_plugins
from medattn.report.markdown import render_markdown
from medattn.survey.analyze import analyze_answers

ARMS = (("resnet18/gradcam", "resnet18", "none"), ("resnet18+se/gradcam", "resnet18+se", "se"),
        ("resnet18+cbam/gradcam", "resnet18+cbam", "cbam"))


def planted_answers(seed: int = 0, n_raters: int = 6, n_items: int = 20) -> pd.DataFrame:
    """Answers in the export format where raters prefer the SE maps (60 %) and score them 1 point higher."""
    rng = np.random.default_rng(seed)
    rows = []
    for rater in range(1, n_raters + 1):
        for item in range(n_items):
            best = rng.choice(3, p=[0.2, 0.6, 0.2])
            for k, (arm, model, attention) in enumerate(ARMS):
                score = int(np.clip(3 + (k == 1) + rng.integers(-1, 2), 1, 5))
                rows.append({"rater": rater, "years": 3 + 4 * rater, "item": item, "model": model,
                             "backbone": "resnet18", "attention": attention, "method": "gradcam", "arm": arm,
                             "score": score, "best": int(k == best), "label": "ABC"[k]})
    return pd.DataFrame(rows)


def test_survey_section_is_a_discovered_plugin_placed_before_methods():
    load_section_plugins()
    names = REPORT_SECTIONS.names()
    assert "survey" in names and names.index("survey") < names.index("methods")


def test_survey_section_reports_the_analysis_of_the_export(tmp_path: Path):
    from medattn.report.sections.survey import survey_sections

    ctx = SimpleNamespace(run=SimpleNamespace(run_dir=tmp_path))
    assert survey_sections(ctx) == []  # no export, no section
    answers = planted_answers()
    (tmp_path / "survey").mkdir()
    answers.to_csv(tmp_path / "survey" / "answers.csv", index=False)
    (section,) = survey_sections(ctx)
    markdown = render_markdown(Document(title="t", intro=[], sections=[section]))
    result = analyze_answers(answers)
    se = result.win_rates.set_index("arm").loc["resnet18+se/gradcam"]
    assert f"{se.win_rate:.1%} [{se.ci_low:.1%}, {se.ci_high:.1%}]" in markdown
    assert f"{int(se.wins)}/{int(se.shown)}" in markdown
    assert "6 raters judged 20 images (120 answers" in markdown
    assert f"chi2 = {result.friedman['chi2']:.2f}" in markdown
    paired = result.paired.set_index("arm").loc["resnet18+se/gradcam"]
    assert f"{paired.mean_diff:+.2f} [{paired.ci_low:+.2f}, {paired.ci_high:+.2f}]" in markdown
    alpha = result.agreement.set_index("measure").loc["krippendorff_alpha_ordinal_scores", "value"]
    assert re.search(rf"\| +{alpha:.3f} \[[-0-9.]+, [-0-9.]+\] \|", markdown)  # with its bootstrap interval
    assert "## By rater experience" in markdown or "By rater experience" in markdown
    assert len(section.figures()) == 1


def test_a_broken_export_gives_a_one_line_note_not_a_crash(tmp_path: Path):
    from medattn.report.sections.survey import survey_sections

    (tmp_path / "survey").mkdir()
    planted_answers().drop(columns="best").to_csv(tmp_path / "survey" / "answers.csv", index=False)
    (section,) = survey_sections(SimpleNamespace(run=SimpleNamespace(run_dir=tmp_path)))
    assert "missing column(s) ['best']" in section.blocks[0].text
