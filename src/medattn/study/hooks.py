"""Post-study steps: write the resolved study description and build the report from the results table."""

from __future__ import annotations

import logging
from pathlib import Path

from medattn.errors import UserError
from medattn.rundir import writer
from medattn.rundir.table import ATTENTION_VS_PLAIN
from medattn.study.spec import StudySpec

logger = logging.getLogger(__name__)


def after_study(spec: StudySpec, out_dir: Path) -> list[Path]:
    """Write `study.json` (with the comparison plan), the explanations (`explain:` block) and the report; return the
    files written."""
    from medattn.provenance import provenance
    from medattn.report import build_report
    from medattn.study.plan import expand_models

    study = spec.model_dump(mode="json", exclude={"storage"})  # a storage URL may hold a password
    contrasts = [{"model": m.name, "reference": m.reference, "kind": ATTENTION_VS_PLAIN}
                 for m in expand_models(spec) if m.reference is not None]
    written = [writer.write_study(out_dir, study, provenance(), contrasts)]
    if spec.explain is not None and spec.explain.enabled:
        from medattn.explain import explain_study

        try:
            written += explain_study(out_dir, spec.explain, study=study).files
        except UserError as exc:  # the results stay; the report is still built, without explanations
            logger.warning("explanations skipped: %s", exc)
    if spec.features is not None:
        from medattn.analysis.spec import run_feature_analysis

        written += run_feature_analysis(spec.features, out_dir)
    paths = build_report(out_dir, study=study)
    return [*written, paths.markdown, paths.html]
