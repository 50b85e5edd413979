"""Binary segmentation masks: which stored values count as a mask, and the checks a segmentation task needs.

A mask file is binary when its values are a subset of {0, 1} or of {0, 255} (a 1-bit PNG decodes to
{False, True}). Anything else (soft JPEG edges, a label map with 0/1/2, a grey scale) is refused with a
one-line error rather than thresholded: a threshold would silently turn a multi-class label map or an
anti-aliased outline into some binary mask, and the Dice of a model trained on it would measure the
threshold as much as the model. `ImageSet.masks` then holds 0/1 uint8 at the images' size (the folder
loader checks that each mask has its image's size before resizing both).

`require_masks` is what a segmentation run checks first: the dataset has masks for every image, they
are 0/1, and every split a run uses has at least one image.
"""

from __future__ import annotations

import numpy as np
import torch

from medattn.data.imageset import ImageSet
from medattn.errors import DataError

BINARY_VALUE_SETS: tuple[frozenset[int], ...] = (frozenset({0, 1}), frozenset({0, 255}))


def mask_value_problem(raw: np.ndarray) -> str | None:
    """The one-line problem with a decoded mask's values (None when it is binary: {0, 1} or {0, 255})."""
    if raw.dtype == bool:
        return None
    values = np.unique(raw)
    found = {int(v) for v in values[:6]}
    if any(found <= allowed for allowed in BINARY_VALUE_SETS) and values.size <= 2:
        return None
    shown = ", ".join(str(v) for v in sorted(found)) + (", ..." if values.size > 6 else "")
    return (f"mask values {{{shown}}} are not binary; save lesion = 255 (or 1) and background = 0, "
            f"e.g. threshold soft or JPEG masks and store them as PNG")


def binary_mask(raw: np.ndarray, where: str) -> np.ndarray:
    """The mask as uint8 0/1, or DataError naming `where` when its values are not {0, 1} / {0, 255}."""
    problem = mask_value_problem(raw)
    if problem is not None:
        raise DataError(f"{where}: {problem}")
    return (raw > 0).astype(np.uint8)


def require_masks(data: ImageSet, where: str, splits: tuple[str, ...] = ("train", "val")) -> torch.Tensor:
    """The dataset's 0/1 masks, or DataError: no masks, values other than 0/1, or an empty split."""
    if data.masks is None:
        raise DataError(f"{where}: dataset '{data.name}' has no masks, so it cannot be segmented; give a dataset "
                        f"with lesion masks (folder: add masks=FOLDER&mask_pattern={{id}}_segmentation.png; "
                        f"synthetic:derm-synth has them)")
    if data.masks.numel() and int(data.masks.max()) > 1:
        raise DataError(f"{where}: masks of '{data.name}' hold values up to {int(data.masks.max())}; "
                        f"masks must be 0/1 (lesion = 1)")
    for split in splits:
        if not np.any(data.split == split):
            raise DataError(f"{where}: dataset '{data.name}' has no '{split}' images; a segmentation run needs "
                            f"train and val splits")
    return data.masks
