"""Read the explanation-map store of a run directory (written by ``medattn explain``) for a survey.

Format (fixed, see DESIGN.md): ``RUN_DIR/explanations/sample.npz`` holds the sampled images
(``ids``, ``images`` uint8 N x C x H x W, ``labels``, optional ``masks``, ``split``, ``seed``);
``RUN_DIR/explanations/runs.csv`` lists the explained runs (``dataset, model, backbone, attention,
seed, run_dir, maps``; paths relative to RUN_DIR); each run's ``maps.npz`` holds ``maps`` (float16
M x H x W in [0, 1]) and the ``index.csv`` beside it names each row (``row, image_id, method, layer,
target, ...``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from medattn.survey.store import SurveyError

RUNS_COLUMNS = ("dataset", "model", "backbone", "attention", "seed", "run_dir", "maps")
INDEX_COLUMNS = ("row", "image_id", "method", "layer", "target")


@dataclass(frozen=True)
class Sample:
    """The explained images: ids, uint8 images (N x C x H x W) and labels."""

    ids: np.ndarray
    images: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class RunMaps:
    """One run's maps (float16 M x H x W) and its index table."""

    maps: np.ndarray
    index: pd.DataFrame


def explanations_dir(run_dir: Path) -> Path:
    """Return RUN_DIR/explanations, raising SurveyError when the run has no stored maps."""
    folder = Path(run_dir) / "explanations"
    if not (folder / "sample.npz").is_file() or not (folder / "runs.csv").is_file():
        raise SurveyError(f"{folder}: no explanation maps (sample.npz and runs.csv); run `medattn explain "
                          f"{run_dir}` first")
    return folder


def read_sample(run_dir: Path) -> Sample:
    """Return the sampled images of RUN_DIR/explanations/sample.npz."""
    path = explanations_dir(run_dir) / "sample.npz"
    with np.load(path, allow_pickle=False) as npz:
        missing = {"ids", "images", "labels"} - set(npz.files)
        if missing:
            raise SurveyError(f"{path}: missing array(s) {sorted(missing)}")
        ids, images, labels = npz["ids"].astype(str), npz["images"], npz["labels"].astype(np.int64)
    if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(ids) or len(labels) != len(ids):
        raise SurveyError(f"{path}: images must be uint8 N x C x H x W with one id and label each, got "
                          f"{images.dtype} {images.shape}, {len(ids)} ids, {len(labels)} labels")
    return Sample(ids, images, labels)


def read_runs(run_dir: Path) -> pd.DataFrame:
    """Return RUN_DIR/explanations/runs.csv, checked for its columns."""
    path = explanations_dir(run_dir) / "runs.csv"
    runs = pd.read_csv(path, dtype={"attention": str, "run_dir": str, "maps": str}, keep_default_na=False)
    missing = [c for c in RUNS_COLUMNS if c not in runs.columns]
    if missing:
        raise SurveyError(f"{path}: missing column(s) {missing}; expected {', '.join(RUNS_COLUMNS)}")
    if runs.empty:
        raise SurveyError(f"{path}: lists no explained runs")
    return runs


def read_run_maps(run_dir: Path, maps_path: str) -> RunMaps:
    """Return the maps and index of one run (``maps_path`` relative to RUN_DIR)."""
    path = (Path(run_dir) / maps_path).resolve()
    index_path = path.parent / "index.csv"
    if not path.is_file() or not index_path.is_file():
        raise SurveyError(f"{path}: maps file or its index.csv not found (listed in explanations/runs.csv)")
    with np.load(path, allow_pickle=False) as npz:
        if "maps" not in npz.files:
            raise SurveyError(f"{path}: no array 'maps'")
        maps = npz["maps"]
    index = pd.read_csv(index_path, dtype={"image_id": str, "layer": str}, keep_default_na=False)
    missing = [c for c in INDEX_COLUMNS if c not in index.columns]
    if missing:
        raise SurveyError(f"{index_path}: missing column(s) {missing}")
    if maps.ndim != 3 or (len(index) and index["row"].max() >= len(maps)):
        raise SurveyError(f"{path}: maps must be M x H x W with every index row < M, got shape {maps.shape}")
    return RunMaps(maps, index)
