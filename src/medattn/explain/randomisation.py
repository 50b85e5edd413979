"""Model-parameter randomisation check (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018).

The maps of the trained model are compared with the maps of the same architecture with freshly initialised
weights (full randomisation, not the cascading variant) by Spearman rank correlation per image; a method
whose maps barely change (mean correlation above `FLAG_ABOVE`) does not depend on what the model learnt.
Spearman with average ranks for ties (as scipy.stats.spearmanr), computed batched with `searchsorted`.
"""

from __future__ import annotations

import torch

FLAG_ABOVE = 0.5


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """(M, N) ranks 1..N of every row, ties given their average rank."""
    values = values.double().contiguous()
    ordered = values.sort(dim=1).values
    left = torch.searchsorted(ordered, values, side="left")
    right = torch.searchsorted(ordered, values, side="right")
    return (left + right + 1).double() / 2


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(M,) Spearman rank correlation between corresponding maps (NaN where one map is constant)."""
    ra, rb = average_ranks(a.flatten(1)), average_ranks(b.flatten(1))
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    denom = (ra.square().sum(1) * rb.square().sum(1)).sqrt()
    return torch.where(denom > 0, (ra * rb).sum(1) / denom.clamp_min(1e-300), torch.nan).float()
