"""The fixed, class-stratified sample of images that every model of a study is explained on.

Drawn from one split with a seed: the classes take turns (as equal a share per class as the split allows),
the images within a class are a seeded permutation. The sample, with its images at model input size, its
labels and masks, is stored once per dataset (`sample.npz`, see docs/explanations.md, "Explanation map store").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from medattn.data.imageset import ImageSet
from medattn.errors import DataError


@dataclass
class Sample:
    """The explained images: ids, dataset positions, uint8 images (N, C, H, W), labels, masks, artefact masks."""

    ids: np.ndarray
    index: np.ndarray
    images: torch.Tensor
    labels: torch.Tensor
    split: str
    seed: int
    masks: torch.Tensor | None = None
    artefact_masks: dict[str, torch.Tensor] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


def stratified_indices(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Positions of `n` items: classes take turns, each class in a seeded random order (sorted by class turn)."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    queues = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    # turn t of class c: the t-th image of class c; sort by (turn, class) and keep the first n
    turns = np.concatenate([np.arange(len(q)) for q in queues])
    order = np.lexsort((np.concatenate([np.full(len(q), i) for i, q in enumerate(queues)]), turns))
    return np.concatenate(queues)[order][:n]


def image_ids(data: ImageSet, positions: np.ndarray) -> np.ndarray:
    """String ids of the images: the id column of folder datasets, else the position in the dataset."""
    concepts = data.concepts
    if concepts is not None and concepts.index.dtype == object:
        return concepts.index.to_numpy()[positions].astype(str)
    return positions.astype(str)


def draw_sample(data: ImageSet, split: str, n: int, seed: int) -> Sample:
    """The class-stratified sample of `n` images of `split`; DataError if the split is smaller than `n`."""
    if split not in data.split_names:
        raise DataError(f"--split {split}: dataset {data.name} has no such split; use one of "
                        f"{', '.join(data.split_names)}")
    in_split = np.flatnonzero(data.split == split)
    if n < 1 or n > len(in_split):
        raise DataError(f"--samples {n}: split '{split}' of {data.name} has {len(in_split)} images; "
                        f"ask for 1..{len(in_split)}")
    labels = data.labels.cpu().numpy()
    positions = in_split[stratified_indices(labels[in_split], n, seed)]
    rows = torch.as_tensor(positions, dtype=torch.long, device=data.images.device)
    return Sample(
        ids=image_ids(data, positions), index=positions.astype(np.int64), images=data.images[rows].cpu(),
        labels=data.labels[rows].cpu(), split=split, seed=seed,
        masks=None if data.masks is None else data.masks[rows].cpu(),
        artefact_masks={k: v[rows].cpu() for k, v in data.artefact_masks.items()},
        class_names=list(data.class_names),
    )


def write_sample(sample: Sample, path: Path) -> Path:
    """Write the sample as sample.npz (format in docs/explanations.md); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"ids": sample.ids.astype(str), "images": sample.images.numpy().astype(np.uint8),
              "labels": sample.labels.numpy().astype(np.int64), "split": np.array(sample.split),
              "seed": np.int64(sample.seed), "index": sample.index.astype(np.int64),
              "class_names": np.array(sample.class_names, dtype=str)}
    if sample.masks is not None:
        arrays["masks"] = (sample.masks.numpy() > 0).astype(np.uint8)
    for name, mask in sample.artefact_masks.items():
        arrays[f"artefact_{name}"] = (mask.numpy() > 0).astype(np.uint8)
    np.savez_compressed(path, **arrays)
    return path


def read_sample(path: Path) -> Sample:
    """Read a sample.npz written by `write_sample` (no pickles)."""
    with np.load(path, allow_pickle=False) as z:
        return Sample(
            ids=z["ids"].astype(str), index=z["index"] if "index" in z else np.arange(len(z["ids"])),
            images=torch.from_numpy(z["images"]), labels=torch.from_numpy(z["labels"]), split=str(z["split"]),
            seed=int(z["seed"]), masks=torch.from_numpy(z["masks"]) if "masks" in z else None,
            artefact_masks={k.removeprefix("artefact_"): torch.from_numpy(z[k]) for k in z.files
                            if k.startswith("artefact_")},
            class_names=[str(c) for c in z["class_names"]] if "class_names" in z else [],
        )
