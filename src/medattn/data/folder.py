"""Image folder + CSV loader (ISIC / HAM10000 layout): `folder:ROOT?labels=meta.csv&id=image_id&label=dx`.

Path convention: ROOT is the dataset folder. Every relative path in the options (`images`, `labels`,
`masks`) is resolved against ROOT; absolute paths are used as they are. A relative ROOT is looked up
under the context's data_dir (MEDATTN_DATA) first, then the current directory. `images` defaults to
ROOT itself, so a flat folder of images plus a CSV needs only `labels=`. HAM10000 as shipped:

    folder:ham10000?images=images&labels=HAM10000_metadata.csv&id=image_id&label=dx&group=lesion_id
          &masks=masks&mask_pattern={id}_segmentation.png

Options (defaults in brackets):
  images [.]        image folder          labels (required)   CSV (or .tsv) with one row per image
  id [id]           id column             label [label]       label column
  pattern / ext     image file name: `pattern` with `{id}` (e.g. `{id}.jpg`, `{id}/img.png`) or `ext`
                    (`{id}.EXT`); neither: the file whose name is the id or the id plus an image suffix
  classes           class order `a,b,c` [sorted unique labels, numeric order for numeric labels]
  other [error]     rows whose label is not in `classes`: error, or drop (e.g. HAM10000 melanoma vs nevus:
                    classes=mel,nv&other=drop)
  balance [none]    down: every class cut to the smallest class's image count, by whole groups (seeded by
                    `seed`), before the split: a cheaper, balanced subset
  group             group column (lesion / patient): no group lands in two splits (a user split that puts
                    one in two is an error); empty cells are singleton groups (each image its own group)
  domain            site column           split             user split column (train/val/test/test_*)
  val [0.15], test [0.15], seed [0]       seeded split stratified by class, grouped by `group`
  size [64]         square side           fit [stretch]       stretch | crop (centre) | pad (black)
  border [0]        pixels cut from every side of the full-size image (and mask) before `fit`
  channels [3]      3 (RGB) or 1 (luma)   masks / mask_pattern  lesion masks folder / file name, as images
  name [ROOT name]  dataset name          workers [cpu count] decoding threads
Other CSV columns (age, sex, localization, ...) become `ImageSet.concepts`, indexed by id.

Images and masks are decoded once by a thread pool (PIL releases the GIL) into uint8 arrays written as
`.npy` files under `ctx.cache_dir/folder/`, keyed by the resolved paths, the decoding options and every
used file's name, size and mtime; later loads memory-map them. Splits are recomputed (fast, seeded).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageOps

from medattn.data.dataset_spec import DataSpec, LoadContext, check_options, option, register_loader
from medattn.data.imageset import ImageSet
from medattn.data.masks import mask_value_problem
from medattn.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
SPLIT_ALIASES = {"training": "train", "valid": "val", "validation": "val", "testing": "test"}
FITS = ("stretch", "crop", "pad")
CACHE_VERSION = 1
_CHUNK = 64
_KNOWN = {"images", "labels", "id", "label", "pattern", "ext", "classes", "group", "domain", "split",
          "val", "test", "seed", "size", "fit", "border", "channels", "masks", "mask_pattern", "name",
          "workers", "other", "balance"}


@dataclass(frozen=True)
class FolderOptions:
    """The validated options of one `folder:` spec, with paths resolved."""

    spec: str
    root: Path
    images: Path
    labels: Path
    id_col: str
    label_col: str
    pattern: str | None
    classes: list[str] | None
    drop_other: bool
    balance: str
    group_col: str | None
    domain_col: str | None
    split_col: str | None
    val: float
    test: float
    seed: int
    size: int
    fit: str
    border: int
    channels: int
    masks: Path | None
    mask_pattern: str | None
    name: str
    workers: int


@dataclass(frozen=True)
class _Files:
    """Image (and mask) paths, one per CSV row, and a fingerprint of their names, sizes and mtimes."""

    images: list[str]
    masks: list[str] | None
    fingerprint: str


@register_loader("folder")
def load_folder(spec: DataSpec, ctx: LoadContext) -> ImageSet:
    """The ImageSet of an image folder labelled by a CSV (decoded once, then loaded from the cache)."""
    opts = parse_options(spec, ctx)
    table = read_table(opts)
    if opts.balance == "down":
        table = undersample(table, opts)
    ids = table[opts.id_col].tolist()
    files = _resolve_files(opts, ids)
    labels, class_names = class_index(table[opts.label_col], opts.classes, _where(opts, opts.label_col))
    groups = _group_column(table, opts, ids)
    split = _split(opts, table, labels, groups, len(class_names))
    cache = _cache_dir(opts, files, ctx)
    images, masks = _load_or_decode(opts, files, cache, ids)
    return ImageSet(
        name=opts.name,
        images=torch.from_numpy(images),
        labels=torch.from_numpy(labels),
        class_names=class_names,
        split=split,
        group=groups if opts.group_col else None,
        domain=_text_column(table, opts.domain_col),
        concepts=_concepts(table, opts),
        masks=None if masks is None else torch.from_numpy(masks),
        source=opts.spec,
        cache_path=None if cache is None else str(cache),
    )


# ----------------------------------------------------------------------------------------- options
def parse_options(spec: DataSpec, ctx: LoadContext) -> FolderOptions:
    """Validated, path-resolved options of a `folder:` spec, or DataError naming the bad option."""
    check_options(spec, _KNOWN)
    root = _resolve_root(spec, ctx)
    if "labels" not in spec.options:
        raise DataError(f"dataset spec '{spec}': option labels=FILE.csv is required (the CSV with one row "
                        f"per image, relative to {root})")
    val, test = option(spec, "val", 0.15, float), option(spec, "test", 0.15, float)
    if "split" in spec.options and ({"val", "test", "seed"} & set(spec.options)):
        raise DataError(f"dataset spec '{spec}': options val/test/seed make a random split and conflict with "
                        f"split={spec.options['split']}; drop one of them")
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise DataError(f"dataset spec '{spec}': val={val} and test={test} must be fractions in [0, 1) "
                        f"with val + test < 1")
    size = option(spec, "size", 64, int)
    if size < 1:
        raise DataError(f"dataset spec '{spec}': option size={size} must be a positive side length")
    classes = option(spec, "classes", None, _split_list)
    drop_other = option(spec, "other", "error", str, ("error", "drop")) == "drop"
    if drop_other and classes is None:
        raise DataError(f"dataset spec '{spec}': option other=drop needs classes=A,B,... (the labels to keep)")
    border = option(spec, "border", 0, int)
    if border < 0:
        raise DataError(f"dataset spec '{spec}': option border={border} must be 0 or a positive pixel count")
    masks = spec.options.get("masks") or None
    return FolderOptions(
        spec=str(spec), root=root,
        images=root / option(spec, "images", "."),
        labels=root / spec.options["labels"],
        id_col=option(spec, "id", "id"), label_col=option(spec, "label", "label"),
        pattern=_image_pattern(spec),
        classes=classes, drop_other=drop_other, balance=option(spec, "balance", "none", str, ("none", "down")),
        group_col=spec.options.get("group") or None, domain_col=spec.options.get("domain") or None,
        split_col=spec.options.get("split") or None,
        val=val, test=test, seed=option(spec, "seed", 0, int),
        size=size, fit=option(spec, "fit", "stretch", str, FITS), border=border,
        channels=option(spec, "channels", 3, int, (1, 3)),
        masks=None if masks is None else root / masks,
        mask_pattern=_pattern(spec, "mask_pattern", spec.options.get("mask_pattern")),
        name=option(spec, "name", root.name or "folder"),
        workers=max(1, option(spec, "workers", min(8, os.cpu_count() or 1), int)),
    )


def _resolve_root(spec: DataSpec, ctx: LoadContext) -> Path:
    """The dataset folder: absolute, under ctx.data_dir, or relative to the current directory."""
    target = Path(spec.target).expanduser()
    candidates = [target.absolute()]
    if ctx.data_dir is not None and not target.is_absolute():
        candidates.insert(0, Path(ctx.data_dir) / target)
    for path in candidates:
        if path.is_dir():
            return path
    tried = " or ".join(str(p) for p in dict.fromkeys(candidates))
    raise DataError(f"dataset spec '{spec}': folder {tried} does not exist; give an existing dataset folder "
                    f"(absolute, or relative to MEDATTN_DATA / the current directory)")


def _split_list(text: str) -> list[str]:
    """Comma-separated names, stripped, without empties."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names or len(set(names)) != len(names):
        raise ValueError(text)
    return names


def _image_pattern(spec: DataSpec) -> str | None:
    """The image file name pattern from `pattern` or `ext` (None: look the id up among image suffixes)."""
    if "pattern" in spec.options and "ext" in spec.options:
        raise DataError(f"dataset spec '{spec}': give either pattern= or ext=, not both")
    if "ext" in spec.options:
        ext = spec.options["ext"].lstrip(".")
        if not ext or "/" in ext:
            raise DataError(f"dataset spec '{spec}': option ext={spec.options['ext']} is not a file suffix; "
                            f"use e.g. ext=jpg")
        return "{id}." + ext
    return _pattern(spec, "pattern", spec.options.get("pattern"))


def _pattern(spec: DataSpec, key: str, pattern: str | None) -> str | None:
    """A file name pattern checked to contain `{id}` and no other field."""
    if not pattern:
        return None
    fields = re.findall(r"{([^{}]*)}", pattern)
    if fields != ["id"]:
        raise DataError(f"dataset spec '{spec}': option {key}={pattern} must contain {{id}} exactly once and "
                        f"no other {{field}}, e.g. {key}={{id}}.png")
    return pattern


def _where(opts: FolderOptions, column: str | None = None) -> str:
    """Prefix naming the CSV (and column) in messages."""
    return f"{opts.labels}" + (f" column '{column}'" if column else "")


# ------------------------------------------------------------------------------------------- table
def read_table(opts: FolderOptions) -> pd.DataFrame:
    """The labels CSV with the named columns checked: present, ids unique, labels non-empty."""
    if not opts.labels.is_file():
        below = _one_level_down(opts)
        raise DataError(f"dataset spec '{opts.spec}': labels file {opts.labels} not found; "
                        + (f"{below} holds it: point folder: at that folder" if below else
                           f"fix labels= (relative to {opts.root}, or absolute)"))
    if not opts.images.is_dir():
        raise DataError(f"dataset spec '{opts.spec}': image folder {opts.images} does not exist; fix "
                        f"images= (relative to {opts.root}) or the dataset path")
    text_cols = [c for c in (opts.id_col, opts.group_col, opts.domain_col, opts.split_col) if c]
    sep = "\t" if opts.labels.suffix.lower() in (".tsv", ".tab") else ","
    try:
        table = pd.read_csv(opts.labels, sep=sep, dtype=dict.fromkeys(text_cols, str))
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{opts.labels}: cannot read as CSV ({_one_line(exc)}); fix the file") from None
    _check_columns(table, opts)
    if opts.drop_other:
        table = table[table[opts.label_col].astype(str).isin(opts.classes)].reset_index(drop=True)
        if table.empty:
            raise DataError(f"{_where(opts, opts.label_col)}: no row has a label in classes="
                            f"{','.join(opts.classes)}; fix classes=")
    return table


def _one_level_down(opts: FolderOptions) -> Path | None:
    """A subfolder of the dataset folder holding the labels file at the same relative path (the layout sits one
    level down, e.g. the unpacked archive's own folder), or None."""
    try:
        relative = opts.labels.relative_to(opts.root)
    except ValueError:  # an absolute labels= path elsewhere
        return None
    return next((p for p in sorted(opts.root.iterdir()) if p.is_dir() and (p / relative).is_file()), None)


def _check_columns(table: pd.DataFrame, opts: FolderOptions) -> None:
    """Raise DataError for a missing column, a duplicated id or an empty id/label cell."""
    named = {"id": opts.id_col, "label": opts.label_col, "group": opts.group_col,
             "domain": opts.domain_col, "split": opts.split_col}
    for key, col in named.items():
        if col and col not in table.columns:
            raise DataError(f"{opts.labels}: no column '{col}' (option {key}=); available columns: "
                            f"{', '.join(map(str, table.columns))}")
    if table.empty:
        raise DataError(f"{opts.labels}: no rows; the CSV must list one image per row")
    for col in (opts.id_col, opts.label_col):
        empty = table[col].isna()
        if empty.any():
            raise DataError(f"{_where(opts, col)}: {int(empty.sum())} empty cell(s), first at CSV line "
                            f"{int(np.flatnonzero(empty.to_numpy())[0]) + 2}; fill them or drop those rows")
    dup = table[opts.id_col].duplicated()
    if dup.any():
        first = table[opts.id_col][dup].head(3).tolist()
        raise DataError(f"{_where(opts, opts.id_col)}: {int(dup.sum())} duplicated id(s), e.g. "
                        f"{', '.join(first)}; each image must appear once")


def class_index(values: pd.Series, classes: Sequence[str] | None, where: str) -> tuple[np.ndarray, list[str]]:
    """Integer labels (int64) and class names for a label column, in `classes` order or sorted order."""
    if classes is None:
        uniques = values.drop_duplicates()
        numeric = pd.api.types.is_numeric_dtype(values)
        classes = [str(u) for u in (uniques.sort_values() if numeric else sorted(uniques.astype(str)))]
    text = values.astype(str).to_numpy()
    codes = pd.Index(list(classes)).get_indexer(text).astype(np.int64)
    if (codes < 0).any():
        unknown = sorted(set(text[codes < 0].tolist()))
        raise DataError(f"{where}: value(s) {', '.join(unknown[:5])} not in classes={','.join(classes)}; add "
                        f"them to classes= or drop those rows")
    return codes, list(classes)


def undersample(table: pd.DataFrame, opts: FolderOptions) -> pd.DataFrame:
    """The rows of whole groups drawn at random (seeded) per class until the next group would take the class past
    the smallest class's image count; the smallest class is kept whole. Rows stay in CSV order."""
    groups = _group_column(table, opts, table[opts.id_col].tolist())
    labels = table[opts.label_col].astype(str).to_numpy()
    target = pd.Series(labels).value_counts().min()
    rng = np.random.default_rng(opts.seed)
    keep = np.zeros(len(table), bool)
    for label in sorted(set(labels)):
        rows = np.flatnonzero(labels == label)
        sizes = pd.Series(groups[rows]).value_counts().sort_index()
        order = rng.permutation(sizes.index.to_numpy())
        chosen = order[np.cumsum(sizes[order].to_numpy()) <= target]
        keep[rows[np.isin(groups[rows], chosen)]] = True
    return table[keep].reset_index(drop=True)


def _text_column(table: pd.DataFrame, column: str | None) -> np.ndarray | None:
    """A column as a str array (None when not asked for)."""
    return None if column is None else table[column].astype(str).to_numpy(dtype=str)


def _group_column(table: pd.DataFrame, opts: FolderOptions, ids: list[str]) -> np.ndarray:
    """Group per image (str); an image with no group, or no group column, is its own group."""
    if opts.group_col is None:
        return np.asarray(ids, dtype=str)
    col = table[opts.group_col]
    return col.where(col.notna(), "__image__" + table[opts.id_col]).to_numpy(dtype=str)


def _concepts(table: pd.DataFrame, opts: FolderOptions) -> pd.DataFrame | None:
    """The CSV columns not used as id/label/group/domain/split, indexed by image id (None if none)."""
    used = {opts.id_col, opts.label_col, opts.group_col, opts.domain_col, opts.split_col}
    extra = table.drop(columns=[c for c in table.columns if c in used])
    if extra.columns.empty:
        return None
    return extra.set_index(pd.Index(table[opts.id_col], name=opts.id_col))


# ------------------------------------------------------------------------------------------- files
def _resolve_files(opts: FolderOptions, ids: list[str]) -> _Files:
    """Each row's image (and mask) path, or DataError counting and naming the ids without a file."""
    images, img_stats = _find_files(opts, opts.images, ids, opts.pattern, "image")
    masks, mask_stats = None, []
    if opts.masks is not None:
        if not opts.masks.is_dir():
            raise DataError(f"dataset spec '{opts.spec}': mask folder {opts.masks} does not exist; "
                            f"fix masks= (relative to {opts.root}) or drop it")
        masks, mask_stats = _find_files(opts, opts.masks, ids, opts.mask_pattern, "mask")
    digest = hashlib.sha256()
    for stat in (*img_stats, *mask_stats):
        digest.update(stat.encode())
    return _Files(images, masks, digest.hexdigest())


def _find_files(opts: FolderOptions, folder: Path, ids: list[str], pattern: str | None,
                what: str) -> tuple[list[str], list[str]]:
    """Paths of the files for `ids` in `folder` and one 'name size mtime' line per file."""
    names = _names_by_pattern(ids, pattern) if pattern else _names_by_lookup(opts, folder, ids, what)
    paths, stats, missing = [], [], []
    for ident, name in zip(ids, names, strict=True):
        path = os.path.join(folder, name) if name else ""
        try:
            st = os.stat(path)
        except OSError:
            missing.append(ident)
            continue
        paths.append(path)
        stats.append(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n")
    if missing:
        how = f"'{pattern}'" if pattern else "the id plus an image suffix"
        raise DataError(f"{folder}: {len(missing)} of {len(ids)} id(s) in {opts.labels} have no {what} file "
                        f"(named {how}), e.g. {', '.join(missing[:5])}; add the files, fix the "
                        f"{'mask_' if what == 'mask' else ''}pattern, or drop those rows")
    return paths, stats


def _names_by_pattern(ids: list[str], pattern: str) -> list[str]:
    """File names made from a `{id}` pattern."""
    return [pattern.format(id=i) for i in ids]


def _names_by_lookup(opts: FolderOptions, folder: Path, ids: list[str], what: str) -> list[str]:
    """File names found by listing the folder once: the id itself, or the id plus one image suffix."""
    by_stem: dict[str, list[str]] = {}
    names: set[str] = set()
    with os.scandir(folder) as entries:
        for entry in entries:
            stem, suffix = os.path.splitext(entry.name)
            names.add(entry.name)
            if suffix.lower() in IMAGE_SUFFIXES:
                by_stem.setdefault(stem, []).append(entry.name)
    matches = [[i] if i in names else by_stem.get(i, []) for i in ids]
    ambiguous = [(i, m) for i, m in zip(ids, matches, strict=True) if len(m) > 1]
    if ambiguous:
        ident, files = ambiguous[0]
        fix = "mask_pattern" if what == "mask" else "ext"
        raise DataError(f"{folder}: {len(ambiguous)} id(s) match several {what} files, e.g. '{ident}': "
                        f"{', '.join(sorted(files))}; choose one with {fix}=")
    return [m[0] if m else "" for m in matches]


# ---------------------------------------------------------------------------------------- decoding
@dataclass(frozen=True)
class _DecodeJob:
    """Everything a decoding thread needs: inputs, output arrays and the decoding options."""

    images: list[str]
    masks: list[str] | None
    out_images: np.ndarray
    out_masks: np.ndarray | None
    size: int
    channels: int
    fit: str
    border: int = 0
    image_fix: Callable[[int], str] = lambda i: "replace the file or drop its row from the labels CSV"


class _DecodeFailure(Exception):
    """One file that could not be decoded, with a ready one-line message."""


def decode_all(job: _DecodeJob, workers: int) -> None:
    """Decode every image (and mask) of `job` into its output arrays, in parallel chunks of files."""
    n = len(job.images)
    chunks = [(start, min(start + _CHUNK, n)) for start in range(0, n, _CHUNK)]
    with _progress(n) as advance, ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_decode_chunk, job, a, b) for a, b in chunks]
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
            for fut in done:
                if isinstance(fut.exception(), _DecodeFailure):
                    for other in pending:
                        other.cancel()
                    raise DataError(str(fut.exception())) from None
                advance(fut.result())  # re-raises anything else (a bug, not a user error)


def _decode_chunk(job: _DecodeJob, start: int, stop: int) -> int:
    """Decode files start..stop-1 of `job` into place; returns how many were decoded."""
    for i in range(start, stop):
        src_size = _decode_image(job, i)
        if job.masks is not None:
            _decode_mask(job, i, src_size)
    return stop - start


def _decode_image(job: _DecodeJob, i: int) -> tuple[int, int]:
    """Decode, convert and resize image i into `job.out_images[i]`; returns its original (width, height)."""
    path = job.images[i]
    try:
        with Image.open(path) as im:
            src_size = im.size
            _check_border(job.border, src_size, path)
            mode = "L" if job.channels == 1 else "RGB"
            im.draft(mode, (2 * job.size, 2 * job.size))  # JPEG: DCT-domain downscale, at most to 2x target
            rgb = _cut_border(_to_8bit(im).convert(mode), job.border, src_size)
            arr = np.asarray(_fit(rgb, job.size, job.fit, Image.Resampling.BICUBIC))
    except _DecodeFailure:
        raise
    except Exception as exc:  # any decoder error is reported with the file's name
        raise _DecodeFailure(f"{path}: cannot decode image ({_one_line(exc)}); {job.image_fix(i)}") from None
    job.out_images[i] = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return src_size


def _decode_mask(job: _DecodeJob, i: int, image_size: tuple[int, int]) -> None:
    """Decode mask i, check its size and binary values (data/masks.py), make it 0/1 and resize it (nearest)."""
    path = job.masks[i]
    try:
        with Image.open(path) as im:
            size = im.size
            raw = np.asarray(im if im.mode in ("1", "P") else _to_8bit(im).convert("L"))
    except Exception as exc:  # any decoder error is reported with the file's name
        raise _DecodeFailure(f"{path}: cannot decode mask ({_one_line(exc)}); replace the file") from None
    if size != image_size:
        raise _DecodeFailure(f"{path}: mask is {size[0]}x{size[1]} but its image {job.images[i]} is "
                             f"{image_size[0]}x{image_size[1]}; a mask must have its image's size")
    problem = mask_value_problem(raw)
    if problem is not None:
        raise _DecodeFailure(f"{path}: {problem}")
    binary = _cut_border(Image.fromarray((raw > 0).astype(np.uint8)), job.border, size)
    job.out_masks[i] = np.asarray(_fit(binary, job.size, job.fit, Image.Resampling.NEAREST))


def _to_8bit(im: Image.Image) -> Image.Image:
    """The image with 16/32-bit integer grey levels mapped to 8 bits (16-bit full range -> 0..255)."""
    if im.mode.startswith("I;16") or im.mode == "I":
        arr = np.asarray(im).astype(np.int64)
        return Image.fromarray((np.clip(arr, 0, 65535) // 257).astype(np.uint8))
    return im


def _check_border(border: int, src_size: tuple[int, int], path: str) -> None:
    """_DecodeFailure when cutting `border` pixels from every side would leave nothing of the image."""
    if 2 * border >= min(src_size):
        raise _DecodeFailure(f"{path}: border={border} leaves nothing of a {src_size[0]}x{src_size[1]} image; "
                             f"use a border below {(min(src_size) + 1) // 2}")


def _cut_border(im: Image.Image, border: int, src_size: tuple[int, int]) -> Image.Image:
    """The image without `border` pixels of the full-size image `src_size` on every side.

    A JPEG decoded at a reduced scale (`Image.draft`) has the border scaled with it and rounded up to whole
    pixels of that scale, so the cut covers at least the same part of the picture (at most one reduced pixel
    more) and no pixel of the border reaches the resampling."""
    if border == 0:
        return im
    bx, by = math.ceil(border * im.size[0] / src_size[0]), math.ceil(border * im.size[1] / src_size[1])
    return im.crop((bx, by, im.size[0] - bx, im.size[1] - by))


def _fit(im: Image.Image, size: int, fit: str, resample: Image.Resampling) -> Image.Image:
    """The image made size x size: stretched, centre-cropped or padded with black."""
    if fit == "crop":
        return ImageOps.fit(im, (size, size), resample)
    if fit == "pad":
        return ImageOps.pad(im, (size, size), resample, color=0)
    return im.resize((size, size), resample)


@contextmanager
def _progress(total: int) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on a terminal (a no-op elsewhere); yields an advance(n) callable."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    if not console.is_terminal:
        yield lambda n: None
        return
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("decoding images", total=total)
        yield lambda n: bar.advance(task, n)


def _one_line(exc: BaseException) -> str:
    """An exception as a short single line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


# ------------------------------------------------------------------------------------------- cache
def _cache_dir(opts: FolderOptions, files: _Files, ctx: LoadContext) -> Path | None:
    """The cache folder for these files and decoding options (None when the context has no cache_dir)."""
    if ctx.cache_dir is None:
        return None
    recipe = json.dumps({"v": CACHE_VERSION, "images": str(opts.images.resolve()), "pattern": opts.pattern,
                         "masks": str(opts.masks.resolve()) if opts.masks else None,
                         "mask_pattern": opts.mask_pattern, "size": opts.size, "channels": opts.channels,
                         "fit": opts.fit, **({"border": opts.border} if opts.border else {})}, sort_keys=True)
    prefix = hashlib.sha256(recipe.encode()).hexdigest()[:10]
    content = hashlib.sha256((recipe + files.fingerprint).encode()).hexdigest()[:16]
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", opts.name)[:40]
    return Path(ctx.cache_dir) / "folder" / f"{safe}-{prefix}-{content}"


def _load_or_decode(opts: FolderOptions, files: _Files, cache: Path | None,
                    ids: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """Images (N, C, S, S) and masks (N, S, S) as uint8: from the cache if valid, else decoded now."""
    if cache is not None:
        hit = _read_cache(cache, files, len(ids), opts)
        if hit is not None:
            return hit
    n, s = len(ids), opts.size
    if cache is None:
        out_img = np.empty((n, opts.channels, s, s), np.uint8)
        out_mask = None if files.masks is None else np.empty((n, s, s), np.uint8)
        decode_all(_decode_job(opts, files, out_img, out_mask), opts.workers)
        return out_img, out_mask
    _write_cache(cache, files, ids, opts)
    hit = _read_cache(cache, files, n, opts)
    if hit is None:
        raise DataError(f"{cache}: cache just written cannot be read back; delete the folder and retry")
    return hit


def _decode_job(opts: FolderOptions, files: _Files, out_img: np.ndarray, out_mask: np.ndarray | None) -> _DecodeJob:
    """The decoding job of a folder spec, with the advice its split allows for an undecodable image."""
    if opts.split_col:
        fix = (f"replace the file or drop its row from the labels CSV (the {opts.split_col} column keeps every "
               f"other image in its split)")
    else:
        fix = ("replace the file, or drop its row from the labels CSV (the seeded split is then recomputed and "
               "other images may change split; a split= column pins it)")
    return _DecodeJob(files.images, files.masks, out_img, out_mask, opts.size, opts.channels, opts.fit,
                      opts.border, lambda i: fix)


def _read_cache(cache: Path, files: _Files, n: int, opts: FolderOptions) -> tuple[np.ndarray, ...] | None:
    """Memory-mapped (copy-on-write) cached arrays, or None when absent, stale or damaged."""
    try:
        meta = json.loads((cache / "meta.json").read_text())
        if meta.get("fingerprint") != files.fingerprint or meta.get("n") != n:
            return None
        images = np.load(cache / "images.npy", mmap_mode="c", allow_pickle=False)
        masks = np.load(cache / "masks.npy", mmap_mode="c", allow_pickle=False) if files.masks else None
    except (OSError, ValueError):
        return None
    s = opts.size
    if images.shape != (n, opts.channels, s, s) or (masks is not None and masks.shape != (n, s, s)):
        return None
    return images, masks


def _write_cache(cache: Path, files: _Files, ids: list[str], opts: FolderOptions) -> None:
    """Decode straight into .npy files in a temporary folder, then move it into place atomically."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache.parent))
    try:
        n, s = len(ids), opts.size
        out_img = np.lib.format.open_memmap(tmp / "images.npy", "w+", np.uint8, (n, opts.channels, s, s))
        out_mask = None if files.masks is None else np.lib.format.open_memmap(
            tmp / "masks.npy", "w+", np.uint8, (n, s, s))
        decode_all(_decode_job(opts, files, out_img, out_mask), opts.workers)
        for arr in (out_img, out_mask):
            if arr is not None:
                arr.flush()
        del out_img, out_mask
        meta = {"version": CACHE_VERSION, "fingerprint": files.fingerprint, "n": n, "source": opts.spec,
                "ids": ids, "images": files.images, "masks": files.masks}
        (tmp / "meta.json").write_text(json.dumps(meta))
        _move_into_place(tmp, cache)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _prune_stale(cache)


def _move_into_place(tmp: Path, cache: Path) -> None:
    """Rename tmp to cache, replacing a stale or damaged cache folder of the same name."""
    try:
        os.rename(tmp, cache)
    except OSError:  # a folder of that name exists: another process won the race, or it is damaged
        shutil.rmtree(cache, ignore_errors=True)
        try:
            os.rename(tmp, cache)
        except OSError:
            pass  # another process put a fresh one in place meanwhile; theirs is as good as ours


def _prune_stale(cache: Path) -> None:
    """Delete caches of the same source and options made from files that have since changed."""
    prefix = cache.name.rsplit("-", 1)[0] + "-"
    for other in cache.parent.glob(prefix + "*"):
        if other != cache and other.is_dir():
            shutil.rmtree(other, ignore_errors=True)


# ------------------------------------------------------------------------------------------- split
def _split(opts: FolderOptions, table: pd.DataFrame, labels: np.ndarray, groups: np.ndarray,
           num_classes: int) -> np.ndarray:
    """Split name per image: the user's split column, or a seeded grouped stratified split."""
    if opts.split_col:
        split = user_split(table[opts.split_col], _where(opts, opts.split_col))
        if opts.group_col:
            check_groups_in_one_split(split, groups, f"{_where(opts, opts.split_col)} with group column "
                                                     f"'{opts.group_col}'")
        return split
    return grouped_split(labels, groups, num_classes, opts.val, opts.test, opts.seed)


def check_groups_in_one_split(split: np.ndarray, groups: np.ndarray, where: str) -> None:
    """DataError naming a group (patient, lesion) whose images a user split puts in more than one split."""
    per_group = pd.DataFrame({"group": groups, "split": split}).groupby("group", sort=True)["split"].unique()
    leaked = per_group[per_group.map(len) > 1]
    if len(leaked):
        first, splits = leaked.index[0], ", ".join(sorted(leaked.iloc[0]))
        raise DataError(f"{where}: group '{first}' is in splits {splits} ({len(leaked)} group(s) span several "
                        f"splits); put every image of a group in one split, or drop the group option")


def user_split(values: pd.Series, where: str) -> np.ndarray:
    """Split names from a user column (train/val/test/test_*; aliases like 'validation' accepted)."""
    if values.isna().any():
        raise DataError(f"{where}: {int(values.isna().sum())} empty cell(s); give every row a split "
                        f"(train, val, test or test_NAME)")
    text = values.astype(str).str.strip().str.lower().replace(SPLIT_ALIASES).to_numpy(dtype=str)
    uniques = np.unique(text)
    bad = [u for u in uniques if u not in ("train", "val", "test") and not re.fullmatch(r"test_\w+", u)]
    if bad:
        raise DataError(f"{where}: unknown split value(s) {', '.join(bad[:5])}; use train, val, test or "
                        f"test_NAME (e.g. test_ood)")
    if "train" not in uniques:
        raise DataError(f"{where}: no row is in split 'train'; mark the training images train")
    return text


def grouped_split(labels: np.ndarray, groups: np.ndarray, num_classes: int, val: float, test: float,
                  seed: int) -> np.ndarray:
    """Split names (train/val/test) per image: seeded, stratified by class, no group in two splits.

    Greedy allocation in the spirit of sklearn's StratifiedGroupKFold, but with unequal target fractions:
    groups are visited largest first (ties in seeded random order) and each goes to the split where it
    most reduces the squared gap between per-class split fractions and the targets.
    """
    uniq, inverse = np.unique(groups, return_inverse=True)
    counts = np.zeros((len(uniq), num_classes))
    np.add.at(counts, (inverse, labels), 1)
    share = counts / np.maximum(counts.sum(0), 1)  # each group's share of each class
    perm = np.random.default_rng(seed).permutation(len(uniq))
    order = perm[np.argsort(-counts[perm].sum(1), kind="stable")]
    target = np.array([1 - val - test, val, test])[:, None]
    alloc = np.zeros((3, num_classes))
    choice = np.empty(len(uniq), np.int64)
    for g in order:
        add = share[g]
        s = int(np.argmin((add * (2 * (alloc - target) + add)).sum(1)))
        alloc[s] += add
        choice[g] = s
    return np.asarray(["train", "val", "test"])[choice[inverse]]
