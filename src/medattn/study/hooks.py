"""Post-study steps: write the resolved study description and build the report from the results table."""

from __future__ import annotations

import json
from pathlib import Path

from medattn.study.spec import StudySpec


def after_study(spec: StudySpec, out_dir: Path) -> list[Path]:
    """Write `study.json` and the report (Markdown + HTML) for `out_dir/results.csv`; return the files written."""
    from medattn.report import build_report

    study = spec.model_dump(mode="json", exclude={"storage"})  # a storage URL may hold a password
    (out_dir / "study.json").write_text(json.dumps(study, indent=2))
    features = []
    if spec.features is not None:
        from medattn.analysis.spec import run_feature_analysis

        features = run_feature_analysis(spec.features, out_dir)
    paths = build_report(out_dir, study=study)
    return [out_dir / "study.json", *features, paths.markdown, paths.html]
