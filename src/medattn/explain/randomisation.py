"""Randomisation sanity checks (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018).

Model-parameter randomisation, two variants. Whole-model: the maps of the trained model against those of the
same architecture with freshly initialised weights. Cascading (the paper's main figure, Quantus' `MPRT` with
layer_order='top_down'): the layers are re-initialised one after another from the top (classifier) down, and
after each step the maps are compared with the trained model's; a curve that stays near 1 while the top layers
are random means the maps do not depend on what the model learnt. Both compare per image by Spearman rank
correlation with average ranks for ties (as scipy.stats.spearmanr), computed batched with `searchsorted`.
Departure from Quantus: the curve is recorded per stage (every module of a stage randomised, in Quantus' order
and with its seeding, so each point equals Quantus' value after that stage's last module;
tests/explain/test_cascade.py) rather than per module.

Flag rule: a method is flagged when, with every layer randomised, the 95 % t-interval of the mean per-image
Spearman lies entirely above FLAG_ABOVE = 0.5 (maps that keep more than half their rank order without any
learnt weight). Power: the interval half-width is t(n-1) x sd / sqrt(n); a model-independent method has
rho = 1 on every image and is flagged for any n >= 2, while for a method with mean rho 0.8 and sd 0.2 over
n = 8 images the bound is 0.8 - 2.36 x 0.2 / 2.83 = 0.63 > 0.5 (flagged). It has no power on coarse grids:
between two unrelated maps upsampled from a g x g grid the per-image rho has sd about 1 / sqrt(g^2 - 1) (0.58
at 2 x 2), so the report calls the check underpowered below the minimum grid instead of passing the method.

Data randomisation (the paper's section 4): the maps of the trained model against those of a model trained on
the same images with permuted labels, which has nothing true left to explain. Departure: the paper retrains
from scratch to convergence (memorising the random labels); here a copy of the trained model is fine-tuned
briefly (`steps` Adam steps of `batch_size` training images at `lr`, default 50 x 32 at 1e-3; no augmentation;
the labels permuted once and the batches drawn with one seeded generator), on the first seed of each model as
the cascade. A fresh training run per model would double the study's cost; the fine-tune costs 50 training
steps per model (about four training epochs of the quickstart's 360 images) and is enough to erase what the
model learnt (its balanced accuracy on the true training labels falls to chance, recorded as a note
by the runner). The check is then stricter than the paper's: the features below the head start from the
trained ones, so a method is only spared a flag if its maps follow what the fine-tune changed. Same per-image
Spearman and the same flag rule (flag_interval) as for model randomisation.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from medattn.explain.spec import DEFAULT_DATA_LR as DATA_LR
from medattn.explain.spec import DEFAULT_DATA_STEPS as DATA_STEPS

FLAG_ABOVE = 0.5
DATA_BATCH = 32  # permuted-label fine-tune batch (module docstring)


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


def cascade_groups(model: nn.Module, stages: list[str] | None = None) -> list[tuple[str, list[nn.Module]]]:
    """The modules Quantus' MPRT randomises (every module with `reset_parameters`), top layer first; grouped by
    the named stages (a module belongs to the first stage whose name prefixes its own; the rest to 'head' above
    the stages and 'stem' below), or one group per module when `stages` is None."""
    modules = [(n, m) for n, m in model.named_modules() if hasattr(m, "reset_parameters")][::-1]
    if stages is None:
        return [(n, [m]) for n, m in modules]
    groups: dict[str, list[nn.Module]] = {}
    seen_stage = False
    for name, module in modules:
        stage = next((s for s in stages if name == s or name.startswith(s + ".")), None)
        seen_stage |= stage is not None
        groups.setdefault(stage or ("stem" if seen_stage else "head"), []).append(module)
    return list(groups.items())


def cascading_randomisation(model: nn.Module, explain: Callable[[nn.Module], torch.Tensor],
                            groups: list[tuple[str, list[nn.Module]]] | None = None,
                            seed: int = 42) -> list[tuple[str, torch.Tensor]]:
    """[(group, (N,) Spearman)] between the maps of `model` and those of a copy whose groups are randomised
    cumulatively, top to bottom (Quantus' MPRT, layer_order='top_down': `torch.manual_seed(seed + 1)` before
    each module's `reset_parameters()`). `explain(m)` returns (N, H, W) maps of model m; `groups` are groups of
    `model` (default: one per module)."""
    original = explain(model).detach().cpu()
    groups = groups if groups is not None else cascade_groups(model)
    position = {id(m): i for i, m in enumerate(model.modules())}
    twin = copy.deepcopy(model)
    twin_modules = list(twin.modules())
    curve = []
    for name, members in groups:
        for module in members:
            torch.manual_seed(seed + 1)
            twin_modules[position[id(module)]].reset_parameters()
        curve.append((name, spearman(original, explain(twin).detach().cpu())))
    return curve


def flag_interval(rho: torch.Tensor, confidence: float = 0.95) -> tuple[float, float, bool]:
    """(mean, lower CI bound, flagged) of the per-image Spearman after full randomisation: flagged when the
    t-interval of the mean lies above FLAG_ABOVE (a NaN image is left out; fewer than 2 images: not flagged)."""
    from scipy import stats

    values = rho[torch.isfinite(rho)].double().numpy()
    if len(values) < 2:
        return (float(values.mean()) if len(values) else float("nan")), float("nan"), False
    mean, sd = float(values.mean()), float(values.std(ddof=1))
    low = mean - stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * sd / len(values) ** 0.5
    return mean, low, bool(low > FLAG_ABOVE)


def permuted_label_model(model: nn.Module, inputs: Callable[[torch.Tensor], torch.Tensor], labels: torch.Tensor,
                         steps: int = DATA_STEPS, lr: float = DATA_LR, seed: int = 0,
                         batch_size: int = DATA_BATCH) -> nn.Module:
    """A copy of `model` fine-tuned on permuted labels (Adam, cross-entropy, train mode; returned in eval mode).

    Args:
        model: the trained model (left untouched).
        inputs: positions (a LongTensor) -> the model's input tensor for those training images.
        labels: (N,) true training labels; permuted once with `seed`.
        steps, lr, batch_size: the fine-tune (batches drawn with replacement from one seeded generator).
    """
    gen = torch.Generator().manual_seed(seed)
    n = labels.shape[0]
    permuted = labels.cpu()[torch.randperm(n, generator=gen)]
    twin = copy.deepcopy(model).train()
    device = next(twin.parameters()).device
    opt = torch.optim.Adam(twin.parameters(), lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            idx = torch.randint(n, (min(batch_size, n),), generator=gen)
            loss = F.cross_entropy(twin(inputs(idx)).float(), permuted[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return twin.eval()
