"""Post-study steps: write the resolved study description and build the report from the results table."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from medattn.errors import UserError
from medattn.study.spec import StudySpec

logger = logging.getLogger(__name__)


def after_study(spec: StudySpec, out_dir: Path) -> list[Path]:
    """Write `study.json`, the explanations (`explain:` block) and the report; return the files written."""
    from medattn.report import build_report

    study = spec.model_dump(mode="json", exclude={"storage"})  # a storage URL may hold a password
    (out_dir / "study.json").write_text(json.dumps(study, indent=2))
    written = [out_dir / "study.json"]
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
