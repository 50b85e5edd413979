"""The feature table of a dataset, joined to images by id: concepts/metadata, ABCD features, a user CSV.

Sources, in order: `ImageSet.concepts` (derm-synth's ground-truth concepts, nuisances and artefacts; a folder
dataset's extra CSV columns such as HAM10000's age, sex, localization, dx_type; Derm7pt's criteria), the ABCD
features of `medattn.analysis.abcd` when the dataset has lesion masks (cached beside the decoded images), and
a user CSV (`--features FILE`) with an id column. `age` is binned in 15-year bins first.

Encoding rule (`encode_feature`, integer codes for the usage test, -1 for a missing value):

- text, category or boolean columns: one code per level (sorted); more than `MAX_CATEGORIES` levels is refused
  (an id or free text, not a feature); two levels, booleans and numeric columns count as ordered (the
  directional test scores them by code), text with three or more levels as unordered;
- numbers taking at most `MAX_INT_LEVELS` distinct integer values (a count, a 7-point score): kept as levels;
- other numbers (continuous): quartile bins, or, when at least `ZERO_SHARE` of the values are exactly 0, a
  level for 0 plus tertiles of the non-zero values. The bin edges are quantiles of the *training split* (`fit`)
  and are shared by every run of a dataset; values outside the training range fall in the end bins. inf is
  refused.

Derived features (computed from other features, e.g. Derm7pt's seven_point_score from the seven criteria,
`DERIVED`) are tested but left out of the family of the multiplicity correction unless asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medattn.analysis.abcd import cached_abcd_features
from medattn.data.imageset import ImageSet
from medattn.errors import DataError

MAX_INT_LEVELS = 8
MAX_CATEGORIES = 50
QUANTILE_BINS = 4
ZERO_SHARE = 0.1
ZERO_BINS = 3
DERIVED = {"derm7pt": ("seven_point_score",)}  # loader kind -> features computed from other features
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


def encode_feature(values: pd.Series, fit: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """Integer codes (-1 = missing) and level names of one column, by the module's encoding rule.

    `fit` (boolean, one per value) marks the rows whose quantiles place the bins of a continuous feature (the
    training split); default: all rows.
    """
    name = str(values.name)
    if pd.api.types.is_bool_dtype(values):
        values = values.astype("Int64")
    if not pd.api.types.is_numeric_dtype(values):
        return _encode_levels(values.astype(object).where(values.notna(), None), name)
    numbers = pd.to_numeric(values, errors="coerce").astype(float).to_numpy()
    if np.isinf(numbers).any():
        raise DataError(f"feature '{name}': inf among its values; replace it by a finite value or leave it empty "
                        f"(missing)")
    present = numbers[~np.isnan(numbers)]
    distinct = np.unique(present)
    if len(distinct) <= MAX_INT_LEVELS and np.all(distinct == np.round(distinct)):
        return _encode_levels(pd.Series(numbers).where(~np.isnan(numbers), None), name)
    fit = np.ones(len(numbers), bool) if fit is None else np.asarray(fit, bool)
    reference = numbers[fit & ~np.isnan(numbers)]
    if reference.size == 0:
        reference = present
    return _bin(numbers, reference)


def _encode_levels(values: pd.Series, name: str) -> tuple[np.ndarray, list[str]]:
    """Codes of a column's levels, sorted; DataError when there are too many to be a feature."""
    codes, levels = pd.factorize(values, sort=True)
    if len(levels) > MAX_CATEGORIES:
        raise DataError(f"feature '{name}': {len(levels)} distinct values (e.g. {levels[0]!s}, {levels[1]!s}) look "
                        f"like an id or free text; drop the column, group its values into at most "
                        f"{MAX_CATEGORIES} levels, or give numbers to have them binned")
    return codes.astype(np.int64), [str(v) for v in levels]


def _bin(numbers: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Quartile bins of the reference values (or 0 plus tertiles of the non-zero ones), applied to all numbers."""
    zero = (reference == 0).mean() >= ZERO_SHARE if reference.size else False
    rest = reference[reference != 0] if zero else reference
    bins = ZERO_BINS if zero else QUANTILE_BINS
    edges = np.unique(np.quantile(rest, np.linspace(0, 1, bins + 1)[1:-1])) if rest.size else np.zeros(0)
    codes = np.searchsorted(edges, numbers, side="right").astype(np.int64)
    bounds = [-np.inf, *edges.tolist(), np.inf]
    levels = [f"[{a:.4g}, {b:.4g})" for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    if zero:
        codes = np.where(numbers == 0, 0, codes + 1)
        levels = ["0", *(f"{lv} (non-zero)" for lv in levels)]
    codes = np.where(np.isnan(numbers), -1, codes)
    used = np.unique(codes[codes >= 0])  # drop empty bins so codes stay 0..levels-1
    remap = np.full(len(levels), -1)
    remap[used] = np.arange(len(used))
    return np.where(codes >= 0, remap[np.maximum(codes, 0)], -1), [levels[k] for k in used]


def is_ordered(values: pd.Series) -> bool:
    """Whether a column's codes are ordered: numbers, booleans, or text with at most two levels."""
    return (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
            or values.nunique(dropna=True) <= 2)


def derived_features(data: ImageSet) -> tuple[str, ...]:
    """The features of `data` that its loader computes from other features (`DERIVED`, by loader kind)."""
    kind = data.source.split(":", 1)[0]
    return DERIVED.get(kind, ())
