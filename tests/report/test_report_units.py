"""Report building blocks: number formats, pipe tables, the section registry and the shared-resample bootstrap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.rundir import PATH, planted_run

from medattn.report import build_report
from medattn.report import formatting as fmt
from medattn.report.document import Paragraph, Section, Table
from medattn.report.html import inline
from medattn.report.html import render_table as html_table
from medattn.report.layout import DATASET_SECTIONS, REPORT_SECTIONS
from medattn.report.markdown import render_table as md_table
from medattn.report.registry import BuilderRegistry
from medattn.stats import paired_bootstrap
from medattn.stats.seed_bootstrap import seed_averaged_bootstrap


def test_number_formats():
    assert fmt.pp(0.031) == "+3.1" and fmt.pp(-0.0004) == "-0.0" and fmt.pp(float("nan")) == "n/a"
    assert fmt.interval_pp(-0.011, 0.019) == "[-1.1, +1.9]"
    assert fmt.mean_sd(0.8123, 0.0071) == "81.2 ± 0.7" and fmt.mean_sd(0.8, float("nan")) == "80.0"
    assert [fmt.pvalue(p) for p in (0.0004, 0.0042, 0.62, None)] == ["<0.001", "0.004", "0.62", "n/a"]
    assert fmt.si(11_689_512) == "11.7 M" and fmt.si(1.82e9) == "1.82 G" and fmt.si(512) == "512"
    assert fmt.hp_value(0.00031) == "0.00031" and fmt.hp_value(128) == "128" and fmt.hp_value("adamw") == "adamw"


def test_markdown_table_escapes_pipes_and_aligns():
    table = Table(columns=("a|b", "n"), rows=(("x", "1"), ("y|z", "22")), align=("l", "r"), caption="cap")
    lines = md_table(table).splitlines()
    assert lines[0] == "Table: cap"
    assert lines[2:] == ["| a\\|b |   n |", "| ---- | --: |", "| x    |   1 |", "| y\\|z |  22 |"]
    with pytest.raises(ValueError, match="row 0 has 1 cells"):
        Table(columns=("a", "b"), rows=(("x",),))


def test_html_escapes_text_and_keeps_inline_markup():
    assert inline("**gain** for `se` & p < 0.05 <script>") == (
        "<strong>gain</strong> for <code>se</code> &amp; p &lt; 0.05 &lt;script&gt;")
    out = html_table(Table(columns=("m", "v"), rows=(("<b>", "1"),), align=("l", "r")))
    assert "<td>&lt;b&gt;</td>" in out and '<td class="r">1</td>' in out


def test_registry_orders_and_rejects_duplicates():
    reg: BuilderRegistry = BuilderRegistry("test")
    reg.register("a", len)
    reg.register("c", len)
    reg.register("b", len, before="c")
    reg.register("d", len, after="a")
    assert reg.names() == ["a", "d", "b", "c"]
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", len)
    with pytest.raises(ValueError, match="no test builder named 'zz'"):
        reg.register("e", len, before="zz")
    reg.unregister("d")
    assert reg.names() == ["a", "b", "c"]
    builtin = ["answer", "datasets", "across-datasets", "methods"]  # plugins may add theirs in between
    assert [name for name in REPORT_SECTIONS.names() if name in builtin] == builtin
    assert DATASET_SECTIONS.names()[:2] == ["comparisons", "models"]


def test_registered_sections_appear_in_both_formats(tmp_path: Path):
    run_dir = planted_run(tmp_path, datasets=(PATH,), seeds=2)
    DATASET_SECTIONS.register("toy-explain", lambda ctx, d: Section("Explanations", [Paragraph(f"maps of **{d}**")]),
                              before="training-curves")
    REPORT_SECTIONS.register("toy-survey", lambda ctx: [Section("Clinician survey", [Paragraph("no ratings yet")])],
                             after="across-datasets")
    try:
        paths = build_report(run_dir)
    finally:
        DATASET_SECTIONS.unregister("toy-explain")
        REPORT_SECTIONS.unregister("toy-survey")
    md, page = paths.markdown.read_text(), paths.html.read_text()
    assert md.index("### Explanations\n\nmaps of **path**") < md.index("### Training curves")
    assert md.index("## Clinician survey") < md.index("## Methods")
    assert "<p>maps of <strong>path</strong></p>" in page and 'id="dataset-path-explanations"' in page


def predictions(labels: np.ndarray, correct: np.ndarray, index: np.ndarray | None = None) -> pd.DataFrame:
    """Return a 2-class prediction table right exactly where ``correct`` is True."""
    pred = np.where(correct, labels, 1 - labels)
    probs = np.eye(2)[pred] * 0.6 + 0.2
    idx = np.arange(len(labels)) if index is None else index
    return pd.DataFrame({"index": idx, "label": labels, "prob_0": probs[:, 0], "prob_1": probs[:, 1]})


def test_seed_averaged_bootstrap_shares_resamples_across_seeds():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 150)
    a = predictions(labels, rng.random(150) < 0.85)
    b = predictions(labels, rng.random(150) < 0.75)
    single = seed_averaged_bootstrap([(a, b)], n_boot=500, seed=4)
    ref = paired_bootstrap(a, b, n_boot=500, seed=4)
    assert (single.observed, single.ci_low, single.ci_high) == (ref.observed, ref.ci_low, ref.ci_high)
    # (a - b) and (b - a) on the same resamples cancel exactly; independent resamples would not
    cancel = seed_averaged_bootstrap([(a, b), (b, a)], n_boot=500, seed=4)
    assert cancel.observed == 0 and cancel.ci_low == 0 and cancel.ci_high == 0 and cancel.n_seeds == 2
    # a seed whose test set differs is left out and counted
    shifted = predictions(labels, rng.random(150) < 0.8, index=np.arange(150) + 1000)
    mixed = seed_averaged_bootstrap([(a, b), (a, b), (shifted, shifted)], n_boot=500, seed=4)
    assert mixed.n_seeds == 2 and mixed.n_seeds_skipped == 1 and mixed.ci_low == ref.ci_low
    assert seed_averaged_bootstrap([], n_boot=10) is None
