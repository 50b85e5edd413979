"""The feature table of a dataset, joined to images by id: concepts/metadata, ABCD features, a user CSV.

Sources, in order: `ImageSet.concepts` (derm-synth's ground-truth concepts, nuisances and artefacts; a folder
dataset's extra CSV columns such as HAM10000's age, sex, localization, dx_type; Derm7pt's criteria), the ABCD
features of `medattn.analysis.abcd` when the dataset has lesion masks (cached beside the decoded images), and
a user CSV (`--features FILE`) with an id column. Every column is then encoded as integer codes for the
usage test (`encode_feature`): categorical columns by level, numeric columns with more than `MAX_LEVELS`
distinct values by quartile bins, missing values as -1. `age` is binned in 15-year bins before that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medattn.analysis.abcd import cached_abcd_features
from medattn.data.imageset import ImageSet
from medattn.errors import DataError

MAX_LEVELS = 6
QUANTILE_BINS = 4
AGE_BINS = (0, 30, 45, 60, 75, 200)
ID_COLUMNS = ("id", "image_id", "case_num", "isic_id")


@dataclass
class FeatureTable:
    """Feature columns aligned with an ImageSet's images, where each came from, and what was skipped and why."""

    table: pd.DataFrame  # one row per image (position), one column per feature
    source: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def image_ids(data: ImageSet) -> np.ndarray:
    """One id string per image: the concept table's id index when it has one, else the image position."""
    if data.concepts is not None and data.concepts.index.name:
        return data.concepts.index.astype(str).to_numpy(dtype=str)
    return np.arange(len(data.labels)).astype(str)


def build_feature_table(data: ImageSet, extra: str | Path | None = None, abcd: bool = True,
                        id_column: str | None = None) -> FeatureTable:
    """All features of a dataset: concepts/metadata, ABCD (when masks exist) and an optional CSV joined by id."""
    parts: list[pd.DataFrame] = []
    source: dict[str, str] = {}
    if data.concepts is not None:
        concepts = _with_age_bins(data.concepts.reset_index(drop=True))
        kind = "concept" if data.source.startswith("synthetic:") else "metadata"
        parts.append(concepts)
        source.update({c: data.feature_kinds.get(c, kind) for c in concepts.columns})  # the loader's word first
    if abcd and data.masks is not None:
        table = cached_abcd_features(data.masks, data.images, data.cache_path)
        # derm-synth's ground-truth `asymmetry` concept and the mask measure must both stay: prefix the measure
        table = table.rename(columns={c: f"abcd_{c}" for c in table.columns if c in source})
        parts.append(table)
        source.update(dict.fromkeys(table.columns, "abcd"))
    if extra is not None:
        table = read_feature_file(Path(extra), image_ids(data), id_column)
        parts.append(table)
        source.update(dict.fromkeys(table.columns, "file"))
    table = pd.concat(parts, axis=1) if parts else pd.DataFrame(index=range(len(data.labels)))
    table = table.loc[:, ~table.columns.duplicated(keep="last")]
    skipped = {c: "constant over all images" for c in table.columns if table[c].nunique(dropna=True) <= 1}
    return FeatureTable(table.drop(columns=list(skipped)), {k: v for k, v in source.items() if k not in skipped},
                        skipped)


def read_feature_file(path: Path, ids: np.ndarray, id_column: str | None = None) -> pd.DataFrame:
    """A user CSV's columns aligned with `ids` (NaN where an image has no row); DataError for a bad file."""
    if not path.is_file():
        raise DataError(f"{path}: features file not found; give a CSV with an id column and one column per feature")
    try:
        table = pd.read_csv(path, dtype={c: str for c in ((id_column,) if id_column else ID_COLUMNS)})
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read as CSV ({' '.join(str(exc).split())[:200]})") from None
    column = id_column or next((c for c in ID_COLUMNS if c in table.columns), None)
    if column is None or column not in table.columns:
        wanted = f"'{id_column}'" if id_column else "one of " + ", ".join(ID_COLUMNS)
        raise DataError(f"{path}: no id column ({wanted}); add a column naming each row's image id "
                        f"(or pass --id-column)")
    table[column] = table[column].astype(str).str.strip()
    if table[column].duplicated().any():
        dup = table[column][table[column].duplicated()].iloc[0]
        raise DataError(f"{path} column '{column}': id {dup} appears twice; give one row per image")
    matched = table[column].isin(set(ids.tolist()))
    if not matched.any():
        raise DataError(f"{path} column '{column}': none of its {len(table)} ids matches an image id of the "
                        f"dataset (e.g. {ids[0] if len(ids) else '-'} vs {table[column].iloc[0]}); fix the ids "
                        f"or the id column")
    features = table.set_index(column).drop(columns=[c for c in ID_COLUMNS if c in table.columns and c != column],
                                            errors="ignore")
    return _with_age_bins(features.reindex(ids).reset_index(drop=True))


def _with_age_bins(table: pd.DataFrame) -> pd.DataFrame:
    """The table with a numeric `age` column replaced by 15-year bins (`age_bin`, labels like '45-60')."""
    if "age" not in table.columns or not pd.api.types.is_numeric_dtype(table["age"]):
        return table
    labels = [f"{a}-{b}" if b < 200 else f"{a}+" for a, b in zip(AGE_BINS[:-1], AGE_BINS[1:], strict=True)]
    binned = pd.cut(table["age"], bins=list(AGE_BINS), labels=labels, right=False)
    return table.drop(columns=["age"]).assign(age_bin=binned.astype(object).where(binned.notna(), np.nan))


def encode_feature(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer codes (-1 = missing) and level names: levels as they are, or quartile bins for many numbers."""
    if pd.api.types.is_bool_dtype(values):
        values = values.astype("Int64")
    numeric = pd.api.types.is_numeric_dtype(values)
    if numeric and values.nunique(dropna=True) > MAX_LEVELS:
        bins = pd.qcut(values, QUANTILE_BINS, duplicates="drop")
        codes = bins.cat.codes.to_numpy(np.int64)
        return codes, [str(c) for c in bins.cat.categories]
    codes, levels = pd.factorize(values, sort=True)
    return codes.astype(np.int64), [str(v) for v in levels]
