"""A report section is one new file: a module dropped into the package `medattn.report.sections` is found,
imported and shown in report.md and report.html, with no edit of any existing file."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from helpers.rundir import PATH, planted_run

import medattn.report.sections as sections
from medattn.report import build_report
from medattn.report.layout import load_section_plugins
from medattn.report.registry import DATASET_SECTIONS, REPORT_SECTIONS

TOY_SECTION = '''"""A toy report section: one line per dataset naming its best model on the test split."""

from medattn.report.document import Paragraph, Section
from medattn.report.registry import DATASET_SECTIONS


def best_model_section(ctx, dataset):
    """Return a section naming the model with the highest mean test balanced accuracy."""
    rows = ctx.results[(ctx.results["dataset"] == dataset) & (ctx.results["split"] == "test")
                       & (ctx.results["metric"] == "balanced_accuracy")]
    best = rows.groupby("model")["value"].mean().idxmax()
    return Section("Best model", [Paragraph(f"toy plugin: best model on {dataset} is **{best}**")])


DATASET_SECTIONS.register("toy-best-model", best_model_section, before="training-curves")
'''


@pytest.fixture
def toy_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The toy section as one file in a folder that is part of the package `medattn.report.sections`."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "toy_best_model.py").write_text(TOY_SECTION)
    monkeypatch.setattr(sections, "__path__", [*sections.__path__, str(folder)])
    yield "medattn.report.sections.toy_best_model"
    sys.modules.pop("medattn.report.sections.toy_best_model", None)
    if "toy-best-model" in DATASET_SECTIONS.names():
        DATASET_SECTIONS.unregister("toy-best-model")


def test_a_new_file_in_the_sections_package_adds_a_section(tmp_path: Path, toy_plugin: str):
    assert "toy-best-model" not in DATASET_SECTIONS.names()
    run_dir = planted_run(tmp_path / "run", datasets=(PATH,), seeds=2)
    paths = build_report(run_dir)
    md, page = paths.markdown.read_text(), paths.html.read_text()
    assert toy_plugin in sys.modules
    names = DATASET_SECTIONS.names()
    assert names.index("toy-best-model") == names.index("training-curves") - 1
    # the planted effects of report_helpers make model+cbam the best model on the path dataset
    assert md.index("### Best model\n\ntoy plugin: best model on path is **resnet18+cbam**") < md.index(
        "### Training curves")
    assert "toy plugin: best model on path is <strong>resnet18+cbam</strong>" in page


def test_discovery_imports_every_module_once(toy_plugin: str):
    loaded = load_section_plugins()
    assert toy_plugin in loaded
    assert load_section_plugins() == loaded  # a second build registers nothing twice
    assert DATASET_SECTIONS.names().count("toy-best-model") == 1
    assert REPORT_SECTIONS.names()[:2] == ["answer", "datasets"]
