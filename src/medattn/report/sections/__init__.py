"""Report sections: the built-in ones and the plugins, side by side; every module here is imported before a
report is built.

Built-in sections (``overview``, ``comparisons``, ``models``, ``diagnostics``, ``across``, ``methods``) define
builders that :mod:`medattn.report.layout` registers first, in the report's order. A plugin module registers its
own builders at import time through :mod:`medattn.report.registry`; nothing else needs editing, and it can
place itself relative to the built-in anchors::

    # src/medattn/report/sections/explanations.py
    from medattn.report.registry import DATASET_SECTIONS

    def explanation_section(ctx, dataset):  # -> Section | None
        ...

    DATASET_SECTIONS.register("explanations", explanation_section, before="training-curves")

Importing this package registers the built-in sections (below), so a plugin module imported on its
own finds its anchors too.
"""

import medattn.report.layout  # noqa: F401  (registers the built-in sections before any plugin)
