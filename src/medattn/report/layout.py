"""Which sections the report has, in which order: the default builders, registered in one place.

Top level: answer, one section per dataset, across datasets, methods. Inside each dataset's section:
comparisons, models, accuracy vs cost, per-class recall and confusion matrices, training curves,
out-of-distribution. The built-in builders live beside the plugins in :mod:`medattn.report.sections`; plugins
add theirs with ``register`` (see :mod:`medattn.report.registry`) from a module there, and
:func:`load_section_plugins` imports every module of that package.
"""

from __future__ import annotations

import importlib
import pkgutil

from medattn.report.context import ReportContext
from medattn.report.document import Paragraph, Section
from medattn.report.registry import DATASET_SECTIONS, REPORT_SECTIONS
from medattn.report.sections.across import across_sections
from medattn.report.sections.comparisons import comparisons_section, ood_section
from medattn.report.sections.diagnostics import curves_section, per_class_section
from medattn.report.sections.methods import methods_sections
from medattn.report.sections.models import cost_section, models_section
from medattn.report.sections.overview import overview_sections

__all__ = ["DATASET_SECTIONS", "REPORT_SECTIONS", "dataset_sections", "load_section_plugins", "register_defaults"]


def dataset_sections(ctx: ReportContext) -> list[Section]:
    """Return one section per dataset, its subsections made by the registered dataset-section builders."""
    sections = []
    for dataset in ctx.run.datasets:
        section = Section(f"Dataset {dataset}")
        spec = ctx.run.dataset_spec(dataset)
        if spec and spec != dataset:
            section.add(Paragraph(f"Loaded from `{spec}`."))
        for entry in DATASET_SECTIONS.builders():
            sub = entry.builder(ctx, dataset)
            if sub is not None:
                section.subsections.append(sub)
        sections.append(section)
    return sections


def register_defaults() -> None:
    """Register the built-in section builders (idempotent: builders already registered are kept)."""
    for name, builder in (("answer", overview_sections), ("datasets", dataset_sections),
                          ("across-datasets", across_sections), ("methods", methods_sections)):
        if name not in REPORT_SECTIONS.names():
            REPORT_SECTIONS.register(name, builder)
    for name, builder in (("comparisons", comparisons_section), ("models", models_section),
                          ("cost", cost_section), ("per-class", per_class_section),
                          ("training-curves", curves_section), ("out-of-distribution", ood_section)):
        if name not in DATASET_SECTIONS.names():
            DATASET_SECTIONS.register(name, builder)



def load_section_plugins() -> list[str]:
    """Import every module of ``medattn.report.sections`` (each registers its builders); return their names."""
    package = importlib.import_module("medattn.report.sections")
    names = [f"{package.__name__}.{info.name}" for info in pkgutil.iter_modules(package.__path__)]
    for name in names:
        importlib.import_module(name)
    return names


register_defaults()
