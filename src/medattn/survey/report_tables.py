"""Write a :class:`~medattn.survey.analyze.SurveyAnalysis` as tidy CSV tables beside the answers export."""

from __future__ import annotations

import json
from pathlib import Path

from medattn.survey.analyze import SurveyAnalysis
from medattn.survey.export import write_csv

TABLES = ("win_rates", "bradley_terry", "likert", "paired", "agreement", "by_experience")


def write_analysis(result: SurveyAnalysis, out: Path) -> list[Path]:
    """Write each table as ``<name>.csv`` and the Friedman test as ``friedman.json`` into ``out``; return the paths."""
    paths = []
    for name in TABLES:
        path = out / f"{name}.csv"
        write_csv(getattr(result, name), path)
        paths.append(path)
    path = out / "friedman.json"
    path.write_text(json.dumps(result.friedman, indent=2, default=float))
    paths.append(path)
    return paths
