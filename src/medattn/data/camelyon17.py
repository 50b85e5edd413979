"""Camelyon17-WILDS v1.0 patches: `camelyon17:ROOT?size=96&limit=0&seed=0`.

Koh et al., "WILDS: A Benchmark of in-the-Wild Distribution Shifts", ICML 2021 (the dataset: Bandi et al.,
"From detection of individual metastases to classification of lymph node status at the patient level: the
CAMELYON17 challenge", IEEE TMI 2019). 96 x 96 px patches of lymph-node slides from 5 hospitals; label 1 when
the central 32 x 32 region contains tumour. ROOT is the folder the WILDS package downloads
(`camelyon17_v1.0/`):

    ROOT/metadata.csv      an unnamed index column, then patient, node, x_coord, y_coord, tumor, slide,
                           center, split (the WILDS reader adds nothing else it needs)
    ROOT/patches/patient_XXX_node_Y/patch_patient_XXX_node_Y_x_X_y_Y.png   (XXX: patient zero-padded to 3)

Splits, as `wilds.datasets.Camelyon17Dataset(split_scheme="official")` defines them: rows of centre 1 are the
OOD validation split and rows of centre 2 the OOD test split whatever their `split` value; the remaining
centres (0, 3, 4) keep the metadata's `split` column, 0 = train and 1 = id_val (WILDS' `split_dict`). medattn's
names: train -> `train`, OOD val (centre 1) -> `val` (WILDS selects models on the OOD validation split),
id_val -> `test` (the held-out in-distribution patches: WILDS reports "ID" accuracy on them) and OOD test
(centre 2) -> `test_ood`, so the report's out-of-distribution section sets the ID and OOD accuracies side by
side. The domain is the hospital (`hospital_0` .. `hospital_4`), the group the patient; slide and node are
metadata columns.

Departures: `limit=N` keeps a seeded random N patches per split (0: all 455 954), since decoding all of
them needs 12.6 GB at 96 px; `size` resizes (bilinear, PIL) when it is not 96. Decoded arrays are cached as
`.npy` under `ctx.cache_dir/camelyon17/`, keyed by metadata.csv's size and mtime and the options.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from medattn.data.dataset_spec import DataSpec, LoadContext, check_options, option, register_loader
from medattn.data.imageset import ImageSet
from medattn.errors import DataError

COLUMNS = ("patient", "node", "x_coord", "y_coord", "tumor", "slide", "center", "split")
OOD_VAL_CENTER, OOD_TEST_CENTER = 1, 2  # WILDS' val_center and test_center (0-indexed hospitals)
WILDS_SPLIT = {0: "train", 1: "id_val"}  # metadata `split` values of centres 0, 3, 4
MEDATTN_SPLIT = {"train": "train", "id_val": "test", "val": "val", "test": "test_ood"}
_OPTIONS = {"size", "limit", "seed", "name", "workers"}


def patch_path(patient: str, node: int, x: int, y: int) -> str:
    """The WILDS relative path of one patch."""
    return f"patches/patient_{patient}_node_{node}/patch_patient_{patient}_node_{node}_x_{x}_y_{y}.png"


def wilds_splits(table: pd.DataFrame) -> np.ndarray:
    """WILDS' official split name (train, id_val, val, test) of every metadata row."""
    out = np.array([WILDS_SPLIT.get(int(s), "") for s in table["split"]], dtype=object)
    center = table["center"].to_numpy(int)
    out[center == OOD_VAL_CENTER] = "val"
    out[center == OOD_TEST_CENTER] = "test"
    bad = np.flatnonzero(out == "")
    if bad.size:
        raise DataError(f"metadata.csv row {bad[0] + 2}: split={table['split'].iloc[bad[0]]} in centre "
                        f"{center[bad[0]]}; WILDS uses 0 (train) or 1 (id_val) there")
    return out.astype(str)


def read_metadata(root: Path) -> pd.DataFrame:
    """metadata.csv with its columns checked (patient as a zero-padded string, the others integers)."""
    path = root / "metadata.csv"
    if not path.is_file():
        raise DataError(f"camelyon17: {path} not found; ROOT must be the WILDS camelyon17_v1.0 folder "
                        f"(metadata.csv and patches/)")
    table = pd.read_csv(path, index_col=0, dtype={"patient": str})
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; WILDS v1.0 has "
                        f"{', '.join(COLUMNS)}")
    for column in COLUMNS[1:]:
        if not pd.api.types.is_integer_dtype(table[column]):
            raise DataError(f"{path}: column '{column}' must hold integers; found {table[column].dtype}")
    table["patient"] = table["patient"].str.zfill(3)
    return table.reset_index(drop=True)


def _limit(splits: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Row positions to keep: all, or a seeded random `limit` per split (in file order)."""
    if limit <= 0:
        return np.arange(len(splits))
    rng = np.random.default_rng(seed)
    keep = [rng.choice(np.flatnonzero(splits == s), size=min(limit, int((splits == s).sum())), replace=False)
            for s in dict.fromkeys(splits)]
    return np.sort(np.concatenate(keep))


def _decode(root: Path, rel: list[str], size: int, workers: int) -> np.ndarray:
    """uint8 (N, 3, size, size) patches; DataError naming the first missing or broken file."""
    out = np.empty((len(rel), 3, size, size), dtype=np.uint8)

    def one(i: int) -> None:
        path = root / rel[i]
        try:
            with Image.open(path) as im:
                rgb = im.convert("RGB")
                if rgb.size != (size, size):
                    rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
                out[i] = np.asarray(rgb).transpose(2, 0, 1)
        except FileNotFoundError:
            raise DataError(f"camelyon17: patch {path} not found (listed in metadata.csv row {i + 2}); "
                            f"complete the patches/ folder or use the WILDS download") from None
        except OSError as exc:
            raise DataError(f"camelyon17: cannot decode {path} ({exc}); replace the file") from None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, range(len(rel))))
    return out


def _cached(ctx: LoadContext, root: Path, key: dict, make) -> np.ndarray:
    """The decoded array from the cache (written on first use); make() when there is no cache folder."""
    if ctx.cache_dir is None:
        return make()
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = Path(ctx.cache_dir) / "camelyon17" / f"{root.name}-{digest}.npy"
    if path.is_file():
        return np.load(path, mmap_mode="c", allow_pickle=False)
    images = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, images)
    tmp.replace(path)
    return images


def _root(spec: DataSpec, ctx: LoadContext) -> Path:
    target = Path(spec.target).expanduser()
    if not target.is_absolute() and ctx.data_dir is not None and (Path(ctx.data_dir) / target).is_dir():
        return Path(ctx.data_dir) / target
    if not target.is_dir():
        raise DataError(f"dataset spec '{spec}': folder {target} not found; give the WILDS camelyon17_v1.0 folder")
    return target


@register_loader("camelyon17")
def load_camelyon17(spec: DataSpec, ctx: LoadContext) -> ImageSet:
    """The WILDS official splits of Camelyon17 as an ImageSet (domain = hospital, group = patient)."""
    check_options(spec, _OPTIONS)
    size = option(spec, "size", 96, int)
    limit, seed = option(spec, "limit", 0, int), option(spec, "seed", 0, int)
    if size < 8:
        raise DataError(f"dataset spec '{spec}': option size={size} must be at least 8")
    root = _root(spec, ctx)
    table = read_metadata(root)
    wilds = wilds_splits(table)
    keep = _limit(wilds, limit, seed)
    table, wilds = table.iloc[keep].reset_index(drop=True), wilds[keep]
    rel = [patch_path(p, n, x, y) for p, n, x, y in
           table[["patient", "node", "x_coord", "y_coord"]].itertuples(index=False, name=None)]
    stat = (root / "metadata.csv").stat()
    key = {"size": size, "limit": limit, "seed": seed, "n": len(rel), "csv": [stat.st_size, stat.st_mtime_ns]}
    workers = option(spec, "workers", 8, int)
    images = _cached(ctx, root, key, lambda: _decode(root, rel, size, workers))
    return ImageSet(
        name=option(spec, "name", "camelyon17"),
        images=torch.from_numpy(np.ascontiguousarray(images)),
        labels=torch.from_numpy(table["tumor"].to_numpy(np.int64, copy=True)),
        class_names=["normal", "tumor"],
        split=np.array([MEDATTN_SPLIT[s] for s in wilds]),
        group=("patient_" + table["patient"]).to_numpy(str),
        domain=np.array([f"hospital_{c}" for c in table["center"]]),
        concepts=table[["slide", "node", "center"]].rename(columns=lambda c: f"meta_{c}"),
        source=str(spec),
        feature_kinds={"meta_slide": "metadata", "meta_node": "metadata", "meta_center": "metadata"},
    )
