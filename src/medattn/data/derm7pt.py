"""Derm7pt, the seven-point checklist dermatology dataset: `derm7pt:ROOT?image=derm&labels=diag5&size=64`.

Kawahara, Daneshvar, Argenziano and Hamarneh, "Seven-Point Checklist and Skin Lesion Classification using
Multi-Task Multi-Modal Neural Nets", IEEE JBHI 2019. The data may not be redistributed: obtain the release
(`release_v0`) from https://derm.cs.sfu.ca and point ROOT at its folder. Layout read here, as released:

    ROOT/meta/meta.csv                     one row per case (META_COLUMNS, all required)
    ROOT/meta/{train,valid,test}_indexes.csv   column `indexes`: 0-based row numbers of meta.csv
    ROOT/images/<path from the derm or clinic column>

Paths are resolved case-insensitively (the release has a path whose case differs from the file's).
Options: `image` derm (dermoscopic, default) or clinic; `labels` diag5 (default: the five groups of Kawahara
et al.: BCC, NEV (all nevi), MEL (all melanomas, metastasis included), MISC (dermatofibroma, lentigo,
melanosis, miscellaneous, vascular lesion), SK) or melanoma (other vs melanoma); `size` [64] square side;
`fit` [stretch] how an image is made square: stretch, crop (centre square) or pad (black bars);
`border` [0] pixels cut from every side first; `exclude` case_num values left out (e.g. a corrupt image)
with every other case kept in its official split; `workers` decoding threads. The image id is `case_num`.

Preprocessing. The authors' code (github.com/jeremykawahara/derm7pt, `Derm7PtDataset(crop_amount=25)` and
`kerasutils.crop_resize_img`) cuts 25 pixels from every side of the full-size image ("some images have a
surrounding black border") and then resizes it to the square target with PIL's `Image.resize`, which does
not keep the aspect ratio: `border=25&fit=stretch` here. The default stays `border=0&fit=stretch` (what
earlier medattn versions did), so existing caches and results keep their meaning; give `border=25` for the
official recipe. Resampling is bicubic (the official call uses PIL's default, bicubic since Pillow 7).

Never delete a row of meta.csv to get rid of a case: the split files list row numbers, so every later case
would move to another split. `exclude=CASE_NUM` is the way; the error for an undecodable image says so.

Concepts (`ImageSet.concepts`, indexed by case_num): the seven criteria mapped to the binary findings that
score points on the seven-point checklist (Argenziano et al., Arch. Dermatol. 1998), as the derm7pt package
scores them: atypical_pigment_network (pigment_network = atypical), blue_whitish_veil (present),
atypical_vascular (vascular_structures dotted or linear irregular), irregular_streaks (streaks irregular),
irregular_pigmentation (diffuse or localized irregular), irregular_dots_globules (irregular),
regression_structures (any of blue areas, white areas, combinations), declared `concept` in
`ImageSet.feature_kinds` together with seven_point_score (the checklist's sum of those criteria); and the
metadata level_of_diagnostic_difficulty, elevation, location, sex and management, declared `metadata`.
Decoded images are cached as .npy under `ctx.cache_dir/derm7pt/`, keyed by the options and every image
file's name, size and mtime; `ImageSet.cache_path` names the file (`medattn data info` shows it).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from medattn.data.dataset_spec import DataSpec, LoadContext, check_options, option, register_loader
from medattn.data.folder import FITS, _DecodeJob, decode_all
from medattn.data.imageset import ImageSet
from medattn.errors import DataError

META_COLUMNS = ("case_num", "diagnosis", "seven_point_score", "pigment_network", "streaks", "pigmentation",
                "regression_structures", "dots_and_globules", "blue_whitish_veil", "vascular_structures",
                "level_of_diagnostic_difficulty", "elevation", "location", "sex", "management", "clinic", "derm",
                "case_id", "notes")
SPLIT_FILES = {"train": "train_indexes.csv", "val": "valid_indexes.csv", "test": "test_indexes.csv"}
MELANOMAS = ("melanoma", "melanoma (in situ)", "melanoma (less than 0.76 mm)", "melanoma (0.76 to 1.5 mm)",
             "melanoma (more than 1.5 mm)", "melanoma metastasis")
DIAG5 = {"BCC": ("basal cell carcinoma",),
         "NEV": ("blue nevus", "clark nevus", "combined nevus", "congenital nevus", "dermal nevus",
                 "recurrent nevus", "reed or spitz nevus"),
         "MEL": MELANOMAS,
         "MISC": ("dermatofibroma", "lentigo", "melanosis", "miscellaneous", "vascular lesion"),
         "SK": ("seborrheic keratosis",)}
LABEL_SETS = {"diag5": DIAG5, "melanoma": {"other": tuple(d for k, v in DIAG5.items() if k != "MEL" for d in v),
                                           "melanoma": MELANOMAS}}
CRITERIA = {
    "atypical_pigment_network": ("pigment_network", ("atypical",)),
    "blue_whitish_veil": ("blue_whitish_veil", ("present",)),
    "atypical_vascular": ("vascular_structures", ("dotted", "linear irregular")),
    "irregular_streaks": ("streaks", ("irregular",)),
    "irregular_pigmentation": ("pigmentation", ("diffuse irregular", "localized irregular")),
    "irregular_dots_globules": ("dots_and_globules", ("irregular",)),
    "regression_structures": ("regression_structures", ("blue areas", "white areas", "combinations")),
}
METADATA = ("seven_point_score", "level_of_diagnostic_difficulty", "elevation", "location", "sex", "management")
FEATURE_KINDS = {**dict.fromkeys(CRITERIA, "concept"), "seven_point_score": "concept",
                 **dict.fromkeys(METADATA[1:], "metadata")}
OPTIONS = {"image", "labels", "size", "fit", "border", "exclude", "workers"}
CACHE_VERSION = 1
UNUSED = "unused"  # cases in no split file are dropped


@register_loader("derm7pt")
def load_derm7pt(spec: DataSpec, ctx: LoadContext) -> ImageSet:
    """The Derm7pt ImageSet of a release folder: images, diagnosis labels, official split, criteria as concepts."""
    check_options(spec, OPTIONS)
    root = _release_root(spec, _root(spec, ctx))
    which = option(spec, "image", "derm", str, ("derm", "clinic"))
    label_set = option(spec, "labels", "diag5", str, tuple(LABEL_SETS))
    decoding = _decoding(spec)
    meta_path = root / "meta" / "meta.csv"
    meta = read_meta(meta_path)
    split = official_split(root / "meta", len(meta))
    cases = meta["case_num"].astype(str).str.strip().to_numpy(dtype=str)
    keep = np.flatnonzero((split != UNUSED) & ~_excluded(spec, cases, meta_path))
    meta, split, cases = meta.iloc[keep].reset_index(drop=True), split[keep], cases[keep]
    labels, class_names = diagnosis_labels(meta, LABEL_SETS[label_set], meta_path)
    files = resolve_images(root / "images", meta[which].astype(str).tolist(), meta_path, which)
    workers = max(1, option(spec, "workers", min(8, os.cpu_count() or 1), int))
    images, cache = _decoded(files, decoding, ctx, workers, _corrupt_image_fix(cases))
    concepts = concept_table(meta)
    return ImageSet(name="derm7pt", images=torch.from_numpy(images), labels=torch.from_numpy(labels),
                    class_names=class_names, split=split, group=cases, concepts=concepts, source=str(spec),
                    cache_path=None if cache is None else str(cache),
                    feature_kinds={c: FEATURE_KINDS[c] for c in concepts.columns})


def _decoding(spec: DataSpec) -> dict:
    """The decoding options (size, fit, border), checked."""
    size = option(spec, "size", 64, int)
    if size < 1:
        raise DataError(f"dataset spec '{spec}': option size={size} must be a positive side length")
    border = option(spec, "border", 0, int)
    if border < 0:
        raise DataError(f"dataset spec '{spec}': option border={border} must be 0 or a positive pixel count "
                        f"(the official preprocessing cuts 25)")
    return {"size": size, "fit": option(spec, "fit", "stretch", str, FITS), "border": border}


def _excluded(spec: DataSpec, cases: np.ndarray, meta_path: Path) -> np.ndarray:
    """Per meta.csv row: is its case_num in the `exclude` option (DataError naming one meta.csv lacks)."""
    names = [t.strip() for t in spec.options.get("exclude", "").split(",") if t.strip()]
    unknown = sorted(set(names) - set(cases.tolist()))
    if unknown:
        raise DataError(f"dataset spec '{spec}': option exclude names case_num {', '.join(unknown[:5])}, not in "
                        f"{meta_path}; give case_num values of meta.csv, comma-separated")
    return np.isin(cases, names)


def _corrupt_image_fix(cases: np.ndarray):
    """The advice for an image that cannot be decoded: replace it or exclude the case, never drop its row."""
    def fix(i: int) -> str:
        return (f"replace it with the file of the Derm7pt release, or leave case {cases[i]} out with "
                f"exclude={cases[i]} (every other case keeps its official split); do not delete its row from "
                f"meta/meta.csv: the split files list row numbers, so every later case would change split")

    return fix


def _root(spec: DataSpec, ctx: LoadContext) -> Path:
    """The folder the spec names: absolute, under ctx.data_dir, or relative to the current directory."""
    target = Path(spec.target).expanduser()
    candidates = ([Path(ctx.data_dir) / target] if ctx.data_dir and not target.is_absolute() else []) + [target]
    for path in candidates:
        if path.is_dir():
            return path
    raise DataError(f"dataset spec '{spec}': folder {target} does not exist; point derm7pt: at the Derm7pt "
                    f"release folder (the one holding meta/ and images/, from https://derm.cs.sfu.ca)")


def _release_root(spec: DataSpec, root: Path) -> Path:
    """`root` when it holds meta/meta.csv; DataError naming the release folder when it sits one level down."""
    if (root / "meta" / "meta.csv").is_file():
        return root
    inside = sorted(p for p in root.iterdir() if p.is_dir() and (p / "meta" / "meta.csv").is_file())
    if inside:
        suggestion = DataSpec(spec.kind, str(inside[0]), spec.options)
        raise DataError(f"dataset spec '{spec}': {root / 'meta' / 'meta.csv'} not found, but {inside[0]} holds "
                        f"a Derm7pt release (meta/meta.csv); point derm7pt: at that folder: '{suggestion}'")
    return root


def read_meta(path: Path) -> pd.DataFrame:
    """meta.csv with every official column checked present (DataError naming the first missing one)."""
    if not path.is_file():
        raise DataError(f"{path}: not found; the Derm7pt release has meta/meta.csv beside images/")
    try:
        meta = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read as CSV ({' '.join(str(exc).split())[:200]})") from None
    missing = [c for c in META_COLUMNS if c not in meta.columns]
    if missing:
        raise DataError(f"{path}: missing column '{missing[0]}'" + (f" (and {len(missing) - 1} more)" if
                                                                      len(missing) > 1 else "")
                        + f"; the official Derm7pt meta.csv has columns {', '.join(META_COLUMNS)}")
    if meta.empty:
        raise DataError(f"{path}: no rows; meta.csv lists one case per row")
    return meta


def official_split(meta_dir: Path, n: int) -> np.ndarray:
    """Split name per case from meta/{train,valid,test}_indexes.csv (0-based rows of meta.csv, column `indexes`)."""
    split = np.full(n, "", dtype=object)
    for name, file in SPLIT_FILES.items():
        path = meta_dir / file
        if not path.is_file():
            raise DataError(f"{path}: not found; the Derm7pt release has meta/{file} (column 'indexes')")
        table = pd.read_csv(path)
        if "indexes" not in table.columns:
            raise DataError(f"{path}: missing column 'indexes' (0-based row numbers of meta.csv)")
        rows = table["indexes"].to_numpy()
        bad = rows[(rows < 0) | (rows >= n)]
        if bad.size:
            raise DataError(f"{path}: index {int(bad[0])} outside meta.csv's rows 0..{n - 1}")
        twice = rows[split[rows] != ""]
        if twice.size:
            raise DataError(f"{path}: row {int(twice[0])} is already in another split file; each case once")
        split[rows] = name
    split[split == ""] = UNUSED
    return split.astype(str)


def diagnosis_labels(meta: pd.DataFrame, label_set: dict[str, tuple[str, ...]],
                     path: Path) -> tuple[np.ndarray, list[str]]:
    """int64 labels and class names, mapping each diagnosis string to its group in `label_set`."""
    lookup = {d: k for k, (_, names) in enumerate(label_set.items()) for d in names}
    diagnosis = meta["diagnosis"].str.strip().str.lower()
    codes = diagnosis.map(lookup)
    if codes.isna().any():
        unknown = sorted(set(diagnosis[codes.isna()]))
        raise DataError(f"{path} column 'diagnosis': unknown value(s) {', '.join(unknown[:5])}; the loader knows "
                        f"the {len(lookup)} diagnoses of the official release")
    return codes.to_numpy(np.int64).copy(), list(label_set)


def concept_table(meta: pd.DataFrame) -> pd.DataFrame:
    """The seven checklist criteria as 0/1 columns plus the metadata, indexed by case_num."""
    table = {name: meta[col].str.strip().str.lower().isin(values).astype(np.int64)
             for name, (col, values) in CRITERIA.items()}
    table.update({c: meta[c].replace("", np.nan) for c in METADATA})
    frame = pd.DataFrame(table)
    frame["seven_point_score"] = pd.to_numeric(frame["seven_point_score"], errors="coerce")
    return frame.set_index(pd.Index(meta["case_num"].astype(str), name="case_num"))


def resolve_images(folder: Path, relative: list[str], meta_path: Path, column: str) -> list[str]:
    """Absolute image paths, matching each relative path case-insensitively under `folder`."""
    if not folder.is_dir():
        raise DataError(f"{folder}: not found; the Derm7pt release keeps its images in images/")
    by_lower: dict[str, str] = {}
    for dirpath, _, names in os.walk(folder):
        for name in names:
            full = os.path.join(dirpath, name)
            by_lower.setdefault(os.path.relpath(full, folder).replace(os.sep, "/").lower(), full)
    paths, missing = [], []
    for rel in relative:
        hit = by_lower.get(rel.strip().replace("\\", "/").lower())
        (paths if hit else missing).append(hit or rel)
    if missing:
        raise DataError(f"{meta_path} column '{column}': {len(missing)} image(s) not found under {folder}, "
                        f"e.g. {', '.join(missing[:3])}; complete the download or fix the paths")
    return paths


def _decoded(files: list[str], decoding: dict, ctx: LoadContext, workers: int,
             image_fix) -> tuple[np.ndarray, Path | None]:
    """uint8 images (N, 3, size, size) and the cache file: read from it when its key matches, else decoded
    (and written to it; None when the context has no cache folder)."""
    size = decoding["size"]
    recipe = {"v": CACHE_VERSION, "size": size}  # default fit/border add nothing: older caches stay valid
    recipe.update({k: v for k, v in decoding.items() if k != "size" and v != {"fit": "stretch", "border": 0}[k]})
    digest = hashlib.sha256(json.dumps(recipe).encode())
    for path in files:
        st = os.stat(path)
        digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    cache = Path(ctx.cache_dir) / "derm7pt" / f"{digest.hexdigest()[:16]}.npy" if ctx.cache_dir else None
    if cache is not None and cache.is_file():
        try:
            arr = np.load(cache, allow_pickle=False)
            if arr.shape == (len(files), 3, size, size):
                return arr, cache
        except (OSError, ValueError):
            pass
    out = np.empty((len(files), 3, size, size), np.uint8)
    decode_all(_DecodeJob(files, None, out, None, size, 3, decoding["fit"], decoding["border"], image_fix), workers)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, out)
        tmp.replace(cache)
    return out, cache
