"""ImageSet: the one in-memory representation of every image source (uint8 N x C x H x W + labels)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch

from medattn.errors import DataError

SPLITS = ("train", "val", "test")
FEATURE_KINDS = ("concept", "metadata")


@dataclass
class ImageSet:
    """Images, labels and per-image extras for all splits of one dataset.

    `split` holds one split name per image ("train", "val", "test", or extra splits such as "test_ood").
    Optional extras are aligned with the images: `group` (patient/lesion id), `domain` (site id),
    `concepts` (a DataFrame, one row per image), `masks` (uint8 N x H x W lesion masks, 0/1) and
    `artefact_masks` (a dict name -> uint8 N x H x W). `feature_kinds` is the loader's word on what a
    `concepts` column is (`FEATURE_KINDS`: a clinical `concept` the image shows, or `metadata` about the
    patient or case); a column it does not name is left to the feature analysis to classify.
    `cache_path` is the decoded-image cache the loader read or wrote (None: loaded directly).
    """

    name: str
    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor  # int64 (N,)
    class_names: list[str]
    split: np.ndarray  # str (N,)
    group: np.ndarray | None = None
    domain: np.ndarray | None = None
    concepts: pd.DataFrame | None = None
    masks: torch.Tensor | None = None
    artefact_masks: dict[str, torch.Tensor] = field(default_factory=dict)
    source: str = ""
    cache_path: str | None = None
    feature_kinds: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise DataError if shapes, dtypes or label ranges are inconsistent."""
        n = self.images.shape[0]
        where = self.source or self.name
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise DataError(f"{where}: images must be uint8 (N, C, H, W), got {self.images.dtype} "
                            f"{tuple(self.images.shape)}")
        if self.labels.shape != (n,):
            raise DataError(f"{where}: {self.labels.shape[0]} labels for {n} images; give one label per image")
        if n and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.class_names)):
            raise DataError(f"{where}: labels must lie in 0..{len(self.class_names) - 1} "
                            f"({len(self.class_names)} classes), found {int(self.labels.min())}.."
                            f"{int(self.labels.max())}; fix the labels or the class list")
        if len(self.split) != n:
            raise DataError(f"{where}: split assignment has {len(self.split)} entries for {n} images")
        for name, extra in (("group", self.group), ("domain", self.domain), ("concepts", self.concepts)):
            if extra is not None and len(extra) != n:
                raise DataError(f"{where}: {name} has {len(extra)} entries for {n} images")
        self._validate_feature_kinds(where)
        for name, m in {"masks": self.masks, **self.artefact_masks}.items():
            if m is not None and tuple(m.shape) != (n, *self.images.shape[2:]):
                raise DataError(f"{where}: {name} have shape {tuple(m.shape)}, expected "
                                f"{(n, *self.images.shape[2:])} (one H x W mask per image, same size)")

    def _validate_feature_kinds(self, where: str) -> None:
        """DataError for a kind outside FEATURE_KINDS or one given for a column the concepts table lacks."""
        columns = set() if self.concepts is None else set(map(str, self.concepts.columns))
        for column, kind in self.feature_kinds.items():
            if kind not in FEATURE_KINDS:
                raise DataError(f"{where}: feature kind '{kind}' of column '{column}' is not one of "
                                f"{', '.join(FEATURE_KINDS)}")
            if column not in columns:
                raise DataError(f"{where}: feature kind given for '{column}', which is not a concepts column")

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    @property
    def in_chans(self) -> int:
        """Number of image channels (1 for grayscale, 3 for RGB)."""
        return int(self.images.shape[1])

    @property
    def image_size(self) -> int:
        """Image height (images are square after loading)."""
        return int(self.images.shape[2])

    @property
    def split_names(self) -> list[str]:
        """Split names present, standard ones first."""
        present = list(dict.fromkeys(self.split.tolist()))
        return [s for s in SPLITS if s in present] + [s for s in present if s not in SPLITS]

    def indices(self, split: str) -> torch.Tensor:
        """Indices (int64 tensor on the images' device) of the images in one split."""
        idx = np.flatnonzero(self.split == split)
        if idx.size == 0:
            raise DataError(f"{self.source or self.name}: split '{split}' is empty or absent; "
                            f"present: {', '.join(self.split_names)}")
        return torch.as_tensor(idx, dtype=torch.long, device=self.images.device)

    def class_counts(self, split: str) -> list[int]:
        """Number of images per class in one split."""
        labels = self.labels[torch.as_tensor(self.split == split, device=self.labels.device)]
        return torch.bincount(labels, minlength=self.num_classes).tolist()

    def subset(self, keep: np.ndarray) -> ImageSet:
        """A new ImageSet with only the images at integer positions `keep` (in that order)."""
        keep = np.asarray(keep)
        rows = torch.as_tensor(keep, dtype=torch.long, device=self.images.device)
        return replace(
            self,
            images=self.images[rows],
            labels=self.labels[rows],
            split=self.split[keep],
            group=None if self.group is None else self.group[keep],
            domain=None if self.domain is None else self.domain[keep],
            concepts=None if self.concepts is None else self.concepts.iloc[keep],
            masks=None if self.masks is None else self.masks[rows],
            artefact_masks={k: v[rows] for k, v in self.artefact_masks.items()},
        )

    def to(self, device: torch.device | str) -> ImageSet:
        """A copy whose tensors live on `device` (images stay uint8)."""
        return replace(
            self,
            images=self.images.to(device),
            labels=self.labels.to(device),
            masks=None if self.masks is None else self.masks.to(device),
            artefact_masks={k: v.to(device) for k, v in self.artefact_masks.items()},
        )
