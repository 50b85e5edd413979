"""Report section plugins: every module in this package is imported before a report is built.

A module here registers its builders at import time through :mod:`medattn.report.registry`; nothing else
needs editing. The built-in sections are registered first (:mod:`medattn.report.layout`), so a plugin can
place itself relative to them::

    # src/medattn/report/sections/explanations.py
    from medattn.report.registry import DATASET_SECTIONS

    def explanation_section(ctx, dataset):  # -> Section | None
        ...

    DATASET_SECTIONS.register("explanations", explanation_section, before="training-curves")

Importing this package registers the built-in sections (below), so a plugin module imported on its
own finds its anchors too.
"""

import medattn.report.layout  # noqa: F401  (registers the built-in sections before any plugin)
