"""The survey's view of a run directory's explanation store (written by ``medattn explain``).

Reads through :mod:`medattn.explain.store` and :mod:`medattn.explain.sample`, the store's one reader (file
names in :data:`medattn.rundir.layout.LAYOUT`), and turns a missing or malformed store into a SurveyError. The
images of a dataset come from the sample the run list names for it (``sample.npz`` for the first dataset,
``sample-<dataset>.npz`` for the others), so a survey of a later dataset shows that dataset's images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from medattn.errors import UserError
from medattn.explain import store
from medattn.rundir import layout
from medattn.rundir.reader import migrate_path
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
    folder = store.study_dir(run_dir)
    if not (folder / store.SAMPLE_FILE).is_file() or not (folder / store.RUNS_FILE).is_file():
        raise SurveyError(f"{folder}: no explanation maps ({store.SAMPLE_FILE} and {store.RUNS_FILE}); run "
                          f"`medattn explain {run_dir}` first")
    return folder


def sample_path(run_dir: Path, dataset: str | None = None) -> Path:
    """Return the sample file of ``dataset``: the one the run list names for it (runs.csv's ``sample`` column),
    else the first dataset's (stores written before that column had one dataset)."""
    folder = explanations_dir(run_dir)
    if dataset is not None:
        runs = read_runs(run_dir)
        named = runs.loc[runs["dataset"].astype(str) == dataset, "sample"] if "sample" in runs.columns else []
        named = [n for n in named if str(n).strip()]
        if named:
            return migrate_path(named[0], Path(run_dir))
    return folder / store.SAMPLE_FILE


def read_sample(run_dir: Path, dataset: str | None = None) -> Sample:
    """Return the sampled images of ``dataset`` (default: the first dataset's)."""
    from medattn.explain.sample import read_sample as read_stored_sample

    path = sample_path(run_dir, dataset)
    try:
        stored = read_stored_sample(path)
    except (OSError, KeyError, ValueError) as exc:
        raise SurveyError(f"{path}: unreadable explained sample ({type(exc).__name__}: {exc}); run "
                          f"`medattn explain {run_dir}` again") from None
    ids, images, labels = stored.ids, stored.images.numpy(), stored.labels.numpy().astype(np.int64)
    if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(ids) or len(labels) != len(ids):
        raise SurveyError(f"{path}: images must be uint8 N x C x H x W with one id and label each, got "
                          f"{images.dtype} {images.shape}, {len(ids)} ids, {len(labels)} labels")
    return Sample(ids, images, labels)


def read_runs(run_dir: Path) -> pd.DataFrame:
    """Return RUN_DIR/explanations/runs.csv, checked for its columns."""
    path = explanations_dir(run_dir) / store.RUNS_FILE
    runs = pd.read_csv(path, dtype={"attention": str, "run_dir": str, "maps": str}, keep_default_na=False)
    missing = [c for c in RUNS_COLUMNS if c not in runs.columns]
    if missing:
        raise SurveyError(f"{path}: missing column(s) {missing}; expected {', '.join(RUNS_COLUMNS)}")
    if runs.empty:
        raise SurveyError(f"{path}: lists no explained runs")
    return runs


def read_run_maps(run_dir: Path, maps_path: str) -> RunMaps:
    """Return the maps and index of one run (``maps_path`` as runs.csv stores it, relative to RUN_DIR)."""
    path = migrate_path(maps_path, Path(run_dir)).resolve()
    try:
        maps, index = store.read_maps(path)
    except UserError:
        raise SurveyError(f"{path}: maps file or its {store.INDEX_FILE} not found (listed in "
                          f"{layout.EXPLANATIONS}/{store.RUNS_FILE})") from None
    except KeyError:
        raise SurveyError(f"{path}: no array 'maps'") from None
    missing = [c for c in INDEX_COLUMNS if c not in index.columns]
    if missing:
        raise SurveyError(f"{path.with_name(store.INDEX_FILE)}: missing column(s) {missing}")
    if maps.ndim != 3 or (len(index) and index["row"].max() >= len(maps)):
        raise SurveyError(f"{path}: maps must be M x H x W with every index row < M, got shape {maps.shape}")
    return RunMaps(maps, index)
