"""The explanation map store of a run directory: the explained sample, the run list, the scores (in the run
directory's explanations folder) and each run's maps with their index (in the run's own folder). File names
and what each holds: :data:`medattn.rundir.layout.LAYOUT` (keys ``sample``, ``explained_runs``,
``explain_scores``, ``run_maps``, ``run_maps_index``). Paths in the run list are relative to RUN_DIR. The format
is fixed: the report and the survey read it through this module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from medattn.errors import DataError
from medattn.rundir import layout
from medattn.rundir.layout import sample_name  # noqa: F401  (the store's API)

EXPLAIN_DIR = layout.EXPLANATIONS
SAMPLE_FILE = layout.SAMPLE
RUNS_FILE = layout.EXPLAINED_RUNS
SCORES_FILE = layout.EXPLAIN_SCORES
MAPS_FILE = layout.MAPS
INDEX_FILE = layout.MAPS_INDEX
INDEX_COLUMNS = ("row", "image_id", "method", "layer", "target", "target_class", "predicted", "label",
                 "probability")
RUNS_COLUMNS = ("dataset", "model", "backbone", "attention", "seed", "run_dir", "maps", "sample")
SCORES_COLUMNS = ("dataset", "model", "seed", "image_id", "method", "target", "metric", "value", "layer", "grid")
SUMMARY_FILE = layout.EXPLAIN_SUMMARY
SETTINGS_FILE = layout.EXPLAIN_SETTINGS
TARGETS = ("predicted", "true")


def study_dir(run_dir: Path) -> Path:
    """RUN_DIR/explanations."""
    return Path(run_dir) / EXPLAIN_DIR


def write_maps(run_artifacts: Path, maps: torch.Tensor, index: pd.DataFrame) -> Path:
    """Write one run's maps.npz (float16, clipped to [0, 1]) and index.csv; returns the maps path."""
    if len(index) != maps.shape[0]:
        raise ValueError(f"{len(index)} index rows for {maps.shape[0]} maps")
    out = Path(run_artifacts) / EXPLAIN_DIR
    out.mkdir(parents=True, exist_ok=True)
    array = maps.detach().float().clamp(0, 1).nan_to_num(0.0).cpu().numpy().astype(np.float16)
    np.savez_compressed(out / MAPS_FILE, maps=array)
    index = index.assign(row=np.arange(len(index)))[list(INDEX_COLUMNS)]
    index.to_csv(out / INDEX_FILE, index=False, float_format="%.6g")
    return out / MAPS_FILE


def read_maps(maps_path: Path) -> tuple[np.ndarray, pd.DataFrame]:
    """One run's maps (float16 M x H x W) and its index table; DataError naming the file if absent."""
    maps_path = Path(maps_path)
    index_path = maps_path.with_name(INDEX_FILE)
    if not maps_path.is_file() or not index_path.is_file():
        raise DataError(f"{maps_path}: explanation maps not found; run `medattn explain RUN_DIR` first")
    with np.load(maps_path, allow_pickle=False) as z:
        maps = z["maps"]
    index = pd.read_csv(index_path, dtype={"image_id": str, "layer": str}, keep_default_na=False)
    return maps, index


def read_runs(run_dir: Path) -> pd.DataFrame:
    """RUN_DIR/explanations/runs.csv; DataError when explanations were not computed."""
    path = study_dir(run_dir) / RUNS_FILE
    if not path.is_file():
        raise DataError(f"{path}: not found; run `medattn explain {run_dir}` first")
    return pd.read_csv(path, dtype={"run_dir": str, "maps": str})


def read_scores(run_dir: Path) -> pd.DataFrame | None:
    """RUN_DIR/explanations/scores.csv, or None when absent (stores written before the layer and grid columns
    read with layer '' and grid 0)."""
    path = study_dir(run_dir) / SCORES_FILE
    if not path.is_file():
        return None
    scores = pd.read_csv(path, dtype={"image_id": str, "layer": str}, keep_default_na=False,
                         na_values={"value": ["", "nan", "NaN"]})
    if "layer" not in scores.columns:
        scores = scores.assign(layer="", grid=0)
    return scores


def write_settings(run_dir: Path, settings: dict) -> Path:
    """Write RUN_DIR/explanations/settings.json (the explain settings the scores were computed with)."""
    import json

    path = study_dir(run_dir) / SETTINGS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    return path


def read_settings(run_dir: Path) -> dict:
    """RUN_DIR/explanations/settings.json, or {} for stores written before it existed."""
    import json

    path = study_dir(run_dir) / SETTINGS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}
