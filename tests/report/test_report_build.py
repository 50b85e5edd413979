"""The report of a synthetic study states the planted effects with compare_models' numbers, and its
Markdown and HTML are well-formed: pipe tables, relative figure files, a self-contained page.
"""

from __future__ import annotations

import base64
import html as html_lib
import re

import numpy as np
import pandas as pd
import pytest
from helpers.rundir import run_folder
from report_helpers import BuiltReport

from medattn.stats import compare_across_datasets, compare_models, describe_comparison, paired_bootstrap
from medattn.stats.rounding import format_near_cutoffs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TABLE_RULE = re.compile(r"^\| (:?-+:? \| )*:?-+:? \|$")


def section(markdown: str, heading: str) -> str:
    """Return the Markdown from ``heading`` (a full heading line) up to the next heading of the same level."""
    level = heading.split(" ")[0]
    start = markdown.index(heading + "\n")
    rest = markdown[start + len(heading) + 1:]
    match = re.search(rf"^{level} ", rest, flags=re.M)
    return heading + "\n" + (rest[: match.start()] if match else rest)


def table_row(text: str, first_cell: str) -> list[str]:
    """Return the cells of the first pipe-table row in ``text`` whose first cell is ``first_cell``."""
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if line.startswith("|") and cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no table row starting with {first_cell!r}")


def pp(x: float) -> str:
    """Format a proportion difference in percentage points (independently of the report's formatter)."""
    return f"{100 * x:+.1f}"


@pytest.fixture(scope="module")
def expected(built_report: BuiltReport) -> pd.DataFrame:
    """compare_models' table of the synthetic results, computed here from the raw results file."""
    return compare_models(built_report.results, rope=0.01)


def test_planted_gain_is_significant_and_null_effect_is_not(built_report: BuiltReport, expected: pd.DataFrame):
    primary = expected[expected["metric"] == "balanced_accuracy"]
    for dataset in ("derm", "path"):
        cbam = primary[(primary["dataset"] == dataset) & (primary["model"] == "resnet18+cbam")
                       & (primary["reference"] == "resnet18")].iloc[0]
        se = primary[(primary["dataset"] == dataset) & (primary["model"] == "resnet18+se")
                     & (primary["reference"] == "resnet18")].iloc[0]
        assert cbam["verdict"] == "significant gain" and 0.02 < cbam["mean_diff"] < 0.04
        assert se["verdict"] in ("no evidence", "practically equivalent") and abs(se["mean_diff"]) < 0.01
        text = section(built_report.markdown, f"## Dataset {dataset}")
        cbam_sentence, se_sentence = describe_comparison(cbam), describe_comparison(se)
        assert f"- {cbam_sentence}" in text and cbam_sentence.endswith("significant gain")
        assert f"- {se_sentence}" in text
        assert (": not significant after Holm correction (inconclusive" in se_sentence
                or se_sentence.endswith(": practically equivalent (within +-1.0 pp)"))
        # the answer at the top repeats both attention-vs-plain verdicts
        assert cbam_sentence in section(built_report.markdown, "## Answer")
        assert se_sentence in section(built_report.markdown, "## Answer")


def test_every_sentence_and_table_number_comes_from_compare_models(built_report: BuiltReport,
                                                                    expected: pd.DataFrame):
    primary = expected[expected["metric"] == "balanced_accuracy"]
    assert len(primary) == 10  # per dataset: 2 attention-vs-plain + 3 vs the best baseline
    for _, row in primary.iterrows():
        sentence = describe_comparison(row)
        assert sentence in built_report.markdown
        assert html_lib.escape(sentence, quote=False) in built_report.html
        comparisons = section(section(built_report.markdown, f"## Dataset {row['dataset']}"), "### Comparisons")
        cells = table_row(comparisons, f"{row['model']} vs {row['reference']}")
        assert cells[1] == str(row["n"])
        assert cells[2] == pp(row["mean_diff"])
        assert cells[3] == f"[{pp(row['ci_low'])}, {pp(row['ci_high'])}]"
        assert cells[7] == ("<0.001" if row["p_holm"] < 0.001 else
                            f"{row['p_holm']:.3f}" if row["p_holm"] < 0.01 else f"{row['p_holm']:.2f}")
        assert cells[8] == f"{row['effect_size']:.2f}"
        # two decimals, more where two would round across P >= 0.95 (e.g. 0.9498 is not '0.95')
        assert cells[9:12] == [format_near_cutoffs(row[c], [0.95], 2) for c in ("p_worse", "p_equiv", "p_better")]
        assert cells[12] == f"{100 * row['mdd']:.1f}"
        assert row["verdict"] in cells[13]


def test_comparisons_csv_equals_compare_models(built_report: BuiltReport, expected: pd.DataFrame):
    written = pd.read_csv(built_report.paths.comparisons)
    test = written[written["split"] == "test"].reset_index(drop=True)
    pd.testing.assert_frame_equal(test, expected, check_dtype=False, rtol=1e-12)
    ood = written[written["split"] == "test_ood"].reset_index(drop=True)
    pd.testing.assert_frame_equal(ood, compare_models(built_report.results, split="test_ood", rope=0.01),
                                  check_dtype=False, rtol=1e-12)


def test_bootstrap_interval_is_the_seed_average_over_shared_resamples(built_report: BuiltReport):
    run = built_report.run_dir
    samples = []
    for seed in range(5):
        model = pd.read_csv(run / run_folder("derm", "resnet18+cbam", seed) / "predictions_test.csv")
        reference = pd.read_csv(run / run_folder("derm", "resnet18", seed) / "predictions_test.csv")
        samples.append(paired_bootstrap(model, reference, n_boot=2000, seed=0).samples)
    low, high = np.quantile(np.mean(samples, axis=0), [0.025, 0.975])
    comparisons = section(section(built_report.markdown, "## Dataset derm"), "### Comparisons")
    cells = table_row(comparisons, "resnet18+cbam vs resnet18")
    assert cells[4] == f"[{pp(low)}, {pp(high)}]"
    # test-set noise with 600 test images is far larger than the seed noise of this synthetic study
    assert high - low > 2 * (float(cells[3].split(",")[1].rstrip("]")) - float(cells[3].split(",")[0][1:])) / 100


def test_ood_gap_is_the_paired_difference_per_model(built_report: BuiltReport):
    r = built_report.results
    r = r[(r["dataset"] == "derm") & (r["metric"] == "balanced_accuracy")]
    wide = r.pivot_table(index=["model", "seed"], columns="split", values="value")
    ood = section(section(built_report.markdown, "## Dataset derm"), "### Out-of-distribution")
    for model in ("vit", "resnet18", "resnet18+cbam", "resnet18+se"):
        gap = (wide.loc[model, "test_ood"] - wide.loc[model, "test"]).mean()
        cells = table_row(ood, model)
        assert cells[3] == pp(gap)
        assert gap < -0.05  # the planted distribution shift
    assert "### Out-of-distribution" not in section(built_report.markdown, "## Dataset path")


def test_across_datasets_numbers_come_from_compare_across_datasets(built_report: BuiltReport):
    result = compare_across_datasets(built_report.results)
    across = section(built_report.markdown, "## Across datasets")
    assert f"(df 3): tie-corrected chi2_F = {result.friedman.chi2:.2f}" in across
    assert f"{result.critical_difference:.2f} average ranks" in across
    ranks = table_row(across, "**average rank**")
    header = table_row(across, "Dataset")
    for model, cell in zip(header[1:], ranks[1:], strict=True):
        assert cell == f"**{result.average_ranks[model]:.2f}**"
    assert "figures/across-datasets-cd-diagram.png" in across


def test_summary_table_has_mean_sd_and_costs(built_report: BuiltReport):
    models = section(section(built_report.markdown, "## Dataset path"), "### Models")
    header = table_row(models, "Model")
    assert header[3:7] == ["Balanced accuracy (%)", "AUC (%)", "Macro F1 (%)", "ECE (%)"]
    assert header[7:] == ["Params", "FLOPs", "Train img/s (separate timing)", "Infer img/s (separate timing)",
                          "Peak mem (MB)"]  # the planted runs record no throughput of their own
    r = built_report.results
    values = r[(r["dataset"] == "path") & (r["model"] == "resnet18+cbam") & (r["split"] == "test")
               & (r["metric"] == "balanced_accuracy")]["value"]
    cells = table_row(models, "resnet18+cbam")
    assert cells[3].strip("*") == f"{100 * values.mean():.1f} ± {100 * values.std():.1f}"
    assert cells[3].startswith("**")  # the planted model is the best
    assert cells[7:9] == ["11.6 M", "1.84 G"]


def test_methods_paragraph_states_what_was_run(built_report: BuiltReport):
    methods = section(built_report.markdown, "## Methods")
    for phrase in ("16 trials of Optuna's TPE sampler", "at most 6 epochs", "median pruning",
                   "lr log-uniform in [1e-04, 0.01]", "batch_size one of {64, 128}",
                   "best validation balanced accuracy", "5 seeds (0, 1, 2, 3, 4)", "paired t test",
                   "Wilcoxon signed-rank", "Holm's method", "(10 balanced accuracy comparisons on test)",
                   "+-1.0 pp", "2000 resamples", "Friedman test", "Nemenyi", "test_ood"):
        assert phrase in methods, phrase


def test_markdown_is_plain_text_with_pipe_tables_and_relative_figures(built_report: BuiltReport):
    md = built_report.markdown
    assert not re.search(r"<[A-Za-z/][^>]*>", md), "no HTML tags in report.md"
    assert "data:image" not in md
    lines = md.splitlines()
    blocks, current = [], []
    for line in [*lines, ""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    assert len(blocks) >= 12
    for block in blocks:
        assert len(block) >= 3 and TABLE_RULE.match(block[1]), block[:2]
        widths = {len(re.findall(r"(?<!\\)\|", line)) for line in block}
        assert len(widths) == 1, block
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    folder = built_report.paths.markdown.parent
    assert links and all(link.startswith("figures/") and link.endswith(".png") for link in links)
    assert {folder / link for link in links} == set(built_report.paths.figures)
    assert sorted((folder / "figures").glob("*.png")) == sorted(built_report.paths.figures)
    for path in built_report.paths.figures:
        assert path.read_bytes()[:8] == PNG_MAGIC


def test_html_is_self_contained_with_the_same_figures(built_report: BuiltReport):
    page = built_report.html
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", page), "only data URIs and in-page links"
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert not re.search(r"https?://", page)
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == len(built_report.paths.figures) == 17
    for encoded, path in zip(images, built_report.paths.figures, strict=True):
        assert base64.b64decode(encoded) == path.read_bytes()
    anchors = set(re.findall(r' id="([^"]+)"', page))
    assert set(re.findall(r'href="#([^"]+)"', page)) <= anchors
