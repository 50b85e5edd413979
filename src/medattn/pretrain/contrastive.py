"""The contrastive objective and its positives: SimCLR's NT-Xent loss and MICLe's multi-instance pairs.

Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations" (SimCLR), ICML 2020:
two augmented views of each image are positives, the other 2(B - 1) views of the batch negatives, and the loss
is the normalised-temperature cross-entropy (NT-Xent) over cosine similarities. Azizi et al., "Big
Self-Supervised Models Advance Medical Image Classification" (MICLe), ICCV 2021: when several images show the
same patient or lesion, the two views come from two different images of that group (a group of one falls back
to two views of the same image). As in MICLe, other images of the same group that land in a batch stay
negatives.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """NT-Xent loss of paired embeddings (B, D): row i of z1 and row i of z2 are positives, all else negatives."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = z @ z.T / temperature
    n = z1.shape[0]
    sim.fill_diagonal_(float("-inf"))  # a view is not its own negative
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(sim.device)
    return F.cross_entropy(sim, target)


def micle_partners(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For every image, the index of a random *other* image of its group (itself when the group has one image).

    Vectorised: images are sorted by group; image i at position p in a group of c members starting at s draws
    r uniform in [0, c - 1) and takes member s + r + (r >= p), which is uniform over the other members.
    """
    codes = np.unique(np.asarray(groups), return_inverse=True)[1].ravel()
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.empty(len(codes), dtype=np.int64)
    position[order] = np.arange(len(codes)) - starts[codes[order]]
    c = counts[codes]
    r = np.floor(rng.random(len(codes)) * np.maximum(c - 1, 1)).astype(np.int64)
    r = r + (r >= position)
    partner = order[starts[codes] + np.where(c > 1, r, position)]
    return partner
