"""A known shortcut planted in any RGB dataset: real artefacts whose presence correlates with a chosen class.

Any dataset spec takes these options (handled by `load_dataset` before the loader sees the spec), e.g.
HAM10000 with ink markings on 90 % of melanomas and 10 % of the other lesions:

    folder:ham10000?...&shortcut=ink&shortcut_class=mel&shortcut_corr=0.9

  shortcut            artefact types, a comma list of ruler, bubble, ink, ink_circle (`medattn.data.artefacts`)
  shortcut_class      the class the artefacts go with (a class name of the dataset)
  shortcut_corr [0.9] in [0, 1]: P(artefact | that class) in train, val and test; P(artefact | other class) is
                      1 - shortcut_corr; 0.5 means no association, 1 a perfect shortcut (derm-synth's rule)
  shortcut_seed [0]   presence draws and placements
  shortcut_templates [artefacts]  the template folder (meta.json + src/): absolute, or under MEDATTN_DATA
                      (the context's data_dir), or relative to the current directory
  shortcut_ood [1]    1: add a `test_ood` split, a copy of the test images in which every artefact type is
                      present with probability 0.5 independently of the class (so the ID vs OOD gap is paired,
                      lesion by lesion); 0: no extra split
  shortcut_field [600x450]  the size of a full image at the templates' scale (WIDTHxHEIGHT); for a `folder:`
                      spec with fit=crop / fit=pad the square's side is the shorter / longer side of it

Each type is drawn independently per image, in the fixed order of `artefacts.TYPES` (a type not asked for is
drawn and discarded, so adding a type leaves the others' presence unchanged), as derm-synth does. The result
carries, per type, a 0/1 concept column (the presence flag, in `ImageSet.concepts`) and a mask
(`ImageSet.artefact_masks[type]`), so explanation energy on the artefact, the feature-usage tests and the removal
probe read it as they read derm-synth's. Copies in `test_ood` keep their group (the same lesions) and get
concept rows indexed `ID@ood`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from medattn.data.artefacts import FIELD, TYPES, check_types, insert_artefacts, load_templates
from medattn.data.dataset_spec import DataSpec, LoadContext, option, parse_spec
from medattn.data.imageset import ImageSet
from medattn.errors import DataError

OPTIONS = ("shortcut", "shortcut_class", "shortcut_corr", "shortcut_seed", "shortcut_templates", "shortcut_ood",
           "shortcut_field")
OOD_SPLIT = "test_ood"
OOD_SUFFIX = "@ood"


@dataclass(frozen=True)
class Shortcut:
    """A validated shortcut request."""

    types: tuple[str, ...]
    target: str
    corr: float
    seed: int
    templates: Path
    ood: bool
    field_size: tuple[int, int]
    spec: str  # the full spec (for messages and ImageSet.source)


def split_shortcut(spec: DataSpec, ctx: LoadContext) -> tuple[DataSpec, Shortcut | None]:
    """The spec without shortcut options, and the validated shortcut (None when the spec asks for none)."""
    mine = {k: v for k, v in spec.options.items() if k in OPTIONS}
    if not mine:
        return spec, None
    base = DataSpec(spec.kind, spec.target, {k: v for k, v in spec.options.items() if k not in OPTIONS})
    where = f"dataset spec '{spec}': option"
    if "shortcut" not in mine:
        raise DataError(f"{where}s {', '.join(sorted(mine))} need shortcut=TYPES (a comma list of "
                        f"{', '.join(TYPES)})")
    types = check_types(tuple(dict.fromkeys(t.strip() for t in mine["shortcut"].split(",") if t.strip())),
                        f"{where} shortcut={mine['shortcut']}")
    if "shortcut_class" not in mine:
        raise DataError(f"{where} shortcut_class=CLASS is required: the class the artefact goes with")
    corr = option(spec, "shortcut_corr", 0.9, float)
    if not 0.0 <= corr <= 1.0:
        raise DataError(f"{where} shortcut_corr={mine['shortcut_corr']} must lie in [0, 1] (0.5 = no shortcut)")
    seed = option(spec, "shortcut_seed", 0, int)
    if seed < 0:
        raise DataError(f"{where} shortcut_seed={seed} must be a non-negative integer")
    return base, Shortcut(types=types, target=mine["shortcut_class"], corr=corr, seed=seed,
                          templates=_templates(mine.get("shortcut_templates", "artefacts"), ctx),
                          ood=bool(option(spec, "shortcut_ood", 1, int, allowed=(0, 1))),
                          field_size=_field(spec, mine.get("shortcut_field"), where), spec=str(spec))


def _templates(text: str, ctx: LoadContext) -> Path:
    """The template folder: absolute, under the data folder, or relative to the current directory."""
    path = Path(text).expanduser()
    if not path.is_absolute() and ctx.data_dir is not None and (Path(ctx.data_dir) / path).is_dir():
        return Path(ctx.data_dir) / path
    return path.absolute()


def _field(spec: DataSpec, text: str | None, where: str) -> tuple[int, int]:
    """(width, height) of a full image at the templates' scale, squared as the folder loader's fit does."""
    width, height = FIELD
    if text is not None:
        try:
            width, height = (int(v) for v in text.lower().split("x"))
        except ValueError:
            raise DataError(f"{where} shortcut_field={text} is not WIDTHxHEIGHT (e.g. 600x450)") from None
        if width <= 0 or height <= 0:
            raise DataError(f"{where} shortcut_field={text} must be positive, e.g. 600x450")
    fit = spec.options.get("fit", "stretch") if spec.kind == "folder" else "stretch"
    if fit == "crop":
        return (min(width, height),) * 2
    if fit == "pad":
        return (max(width, height),) * 2
    return width, height


def presence(labels: np.ndarray, target: int, corr: float, rng: np.random.Generator,
             independent: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per type in TYPES, a bool (N,) presence: P = corr for the target class, 1 - corr otherwise, and 0.5
    where `independent` is true."""
    p = np.where(labels == target, corr, 1.0 - corr)
    if independent is not None:
        p = np.where(independent, 0.5, p)
    return {t: rng.random(labels.size) < p for t in TYPES}


def apply_shortcut(data: ImageSet, shortcut: Shortcut) -> ImageSet:
    """`data` with the shortcut's artefacts inserted (and its test_ood copy), flags as concepts, masks kept."""
    where = f"dataset spec '{shortcut.spec}'"
    if data.in_chans != 3:
        raise DataError(f"{where}: shortcut artefacts are RGB; this dataset has {data.in_chans} channel(s) "
                        f"(use channels=3)")
    if shortcut.target not in data.class_names:
        raise DataError(f"{where}: option shortcut_class={shortcut.target} is not a class; use one of "
                        f"{', '.join(data.class_names)}")
    if shortcut.ood and OOD_SPLIT in data.split:
        raise DataError(f"{where}: the dataset already has a {OOD_SPLIT} split; drop it or set shortcut_ood=0")
    bank = load_templates(shortcut.templates)
    copy = np.flatnonzero(data.split == "test") if shortcut.ood else np.zeros(0, np.int64)
    if shortcut.ood and copy.size == 0:
        raise DataError(f"{where}: no test split to copy into {OOD_SPLIT}; give the dataset a test split or set "
                        f"shortcut_ood=0")
    both = _with_copies(data, copy)
    labels = both.labels.cpu().numpy()
    rng = np.random.default_rng(shortcut.seed)
    drawn = presence(labels, data.class_names.index(shortcut.target), shortcut.corr, rng,
                     independent=both.split == OOD_SPLIT)
    present = {t: drawn[t] for t in shortcut.types}
    images, masks = insert_artefacts(both.images.cpu(), present, bank,
                                     lesion_masks=None if both.masks is None else both.masks.cpu(),
                                     seed=shortcut.seed, field_size=shortcut.field_size)
    concepts = both.concepts.copy() if both.concepts is not None else pd.DataFrame(index=pd.RangeIndex(len(labels)))
    for t in shortcut.types:
        concepts[t] = present[t].astype(np.int64)
    device = data.images.device
    return replace(both, images=torch.from_numpy(images).to(device), concepts=concepts,
                   artefact_masks={**both.artefact_masks,
                                   **{t: torch.from_numpy(m).to(device) for t, m in masks.items()}},
                   source=_resolved_source(shortcut))


def _with_copies(data: ImageSet, copy: np.ndarray) -> ImageSet:
    """`data` followed by copies of the images at `copy`, in split test_ood (concept rows indexed ID@ood)."""
    if copy.size == 0:
        return data
    extra = data.subset(copy)
    concepts = None
    if data.concepts is not None:
        rows = extra.concepts.copy()
        if isinstance(rows.index, pd.RangeIndex) or rows.index.name is None:
            rows.index = pd.RangeIndex(len(data.labels), len(data.labels) + copy.size)
        else:
            rows.index = rows.index.astype(str) + OOD_SUFFIX
        concepts = pd.concat([data.concepts, rows])

    def cat(a, b):
        if a is None:
            return None
        return torch.cat([a, b]) if isinstance(a, torch.Tensor) else np.concatenate([a, b])

    # replace() keeps every other field (class names, feature kinds, cache path, ...) as the loader set it
    return replace(data, images=cat(data.images, extra.images), labels=cat(data.labels, extra.labels),
                   split=np.concatenate([data.split, np.full(copy.size, OOD_SPLIT)]).astype(str),
                   group=cat(data.group, extra.group), domain=cat(data.domain, extra.domain), concepts=concepts,
                   masks=cat(data.masks, extra.masks),
                   artefact_masks={k: cat(v, extra.artefact_masks[k]) for k, v in data.artefact_masks.items()})


def _resolved_source(shortcut: Shortcut) -> str:
    """The spec with shortcut_templates made absolute, so the templates are found again from `ImageSet.source`."""
    spec = parse_spec(shortcut.spec)
    return str(DataSpec(spec.kind, spec.target, {**spec.options, "shortcut_templates": str(shortcut.templates)}))


def insert_like(data: ImageSet, rows: np.ndarray, name: str, seed: int = 0) -> torch.Tensor | None:
    """uint8 images `data.images[rows]` with the real artefact `name` inserted by the dataset's shortcut rules
    (its templates, scale and the lesion masks), or None when `data` has no shortcut with that type."""
    try:
        spec = parse_spec(data.source)
    except DataError:
        return None
    if spec.kind == "synthetic":  # derm-synth plants its own artefacts (dataset_spec.load_dataset)
        return None
    _, shortcut = split_shortcut(spec, LoadContext())
    if shortcut is None or name not in shortcut.types:
        return None
    rows = np.asarray(rows)
    masks = None if data.masks is None else data.masks[torch.as_tensor(rows)].cpu()
    out, _ = insert_artefacts(data.images[torch.as_tensor(rows)].cpu(), {name: np.ones(rows.size, bool)},
                              load_templates(shortcut.templates), lesion_masks=masks, seed=seed,
                              field_size=shortcut.field_size)
    return torch.from_numpy(out)
