"""The report never overclaims (issue 8): cut-off-safe rounding, the Wilcoxon floor with few seeds, both
Friedman statistics, the scope of the seed statistics, the baseline chosen on validation, and the
significant-but-negligible verdict in the answer's summary line.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
from report_helpers import BuiltReport
from test_report_build import section, table_row

from medattn.report import formatting as fmt
from medattn.report.context import ReportSettings
from medattn.report.sections.overview import overview_sections
from medattn.stats import compare_across_datasets


def test_rounding_keeps_values_on_their_side_of_the_cutoff():
    assert fmt.pvalue(0.0496, alpha=0.05) == "0.0496"
    assert fmt.pvalue(0.0504, alpha=0.05) == "0.05"
    assert fmt.pvalue(0.62, alpha=0.05) == "0.62" and fmt.pvalue(0.0004, alpha=0.05) == "<0.001"
    assert fmt.prob(0.9496, cut=0.95) == "0.9496" and fmt.prob(0.951, cut=0.95) == "0.95"
    assert fmt.prob(0.71, cut=0.95) == "0.71"


def test_wilcoxon_column_says_it_cannot_reach_alpha_with_five_seeds(built_report: BuiltReport):
    comparisons = section(section(built_report.markdown, "## Dataset derm"), "### Comparisons")
    cells = table_row(comparisons, "resnet18+cbam vs resnet18")
    assert cells[1] == "5" and cells[6].endswith("(min 0.06)")
    assert "cannot reach p < 0.05 with fewer than 6 seeds" in comparisons


def test_friedman_prints_both_statistics_labelled(built_report: BuiltReport):
    fr = compare_across_datasets(built_report.results).friedman
    across = section(built_report.markdown, "## Across datasets")
    assert f"tie-corrected chi2_F = {fr.chi2:.2f}" in across
    assert f"uncorrected chi2_F (Demsar 2006) = {fr.chi2_uncorrected:.2f}" in across


def test_methods_state_the_scope_and_the_baseline_choice(built_report: BuiltReport):
    methods = section(built_report.markdown, "## Methods")
    assert ("describe training noise (seed-to-seed variation) on this split and test set; test-set sampling "
            "noise enters only the test bootstrap interval") in methods
    assert "highest mean balanced accuracy on the val split" in methods
    assert "alpha/m" in methods


def test_answer_summary_line_counts_negligible_gains():
    table = pd.DataFrame({
        "dataset": "d", "model": ["a+se", "a+cbam"], "reference": "a", "kind": "attention_vs_plain",
        "metric": "balanced_accuracy", "n": 5, "mean_diff": [0.0025, 0.001], "sd_diff": 0.0005,
        "ci_low": [0.002, -0.01], "ci_high": [0.003, 0.012], "p_t": [0.0001, 0.8], "p_holm": [0.0002, 0.8],
        "p_worse": 0.0, "p_equiv": [1.0, 0.5], "p_better": [0.0, 0.5], "mdd": 0.01, "holm_family_size": 2,
        "alpha": 0.05, "power": 0.8, "confidence": 0.95, "equiv_prob": 0.95, "rope": 0.01,
        "verdict": ["significant but negligible gain", "no evidence"]})
    results = pd.DataFrame({"dataset": "d", "model": ["a", "a+se", "a+cbam"], "seed": 0})
    ctx = SimpleNamespace(results=results, settings=ReportSettings(), comparisons=lambda split=None: table,
                          run=SimpleNamespace(datasets=["d"], study={"name": "s"}, run_dir=Path("s")))
    text = overview_sections(ctx)[0].blocks[1].text
    assert "significant but negligible gain: 1, no evidence: 1" in text
