"""Scores of one run's scored map sets: localisation (lesion and artefact masks), faithfulness, randomisation,
each beside the reference points that say what the number means.

Rows are tidy (image_id, method, target, metric, value, layer, grid): `layer` is the module the maps come from
and `grid` the side of the grid they were upsampled from (the image size for pixel-resolution maps). Reference
points are pseudo methods, computed from the masks and the same sample:

- `uniform`: what an uninformative map scores on average (localisation.uniform_baselines).
- `random`: i.i.d. uniform noise drawn on the CAM grid and upsampled as the CAMs are (a map at the method's
  resolution that knows nothing; seeded by the explain seed); for deletion/insertion, a random pixel ranking.
- `oracle`: the lesion mask itself (the ceiling at pixel resolution); `oracle_grid`: the mask averaged onto the
  CAM grid and upsampled the same way (the ceiling that the chosen layer's resolution allows).

Insertion gain = insertion AUC - p(start image), the area the curve gains above the prediction on the baseline
(blurred) image where insertion starts: models whose start prediction differs (0.47 vs 0.59 on the quickstart)
are then compared on what the inserted pixels add. It is a difference, not a ratio, so it is defined for every
image (a ratio by p(full) - p(start) is undefined where the blur does not change the prediction).

Randomisation rows (randomisation.py): `randomisation_spearman` (maps of the same architecture with random
weights), `data_randomisation_spearman` (maps of the model fine-tuned on permuted labels) and
`cascade_spearman:<stage>`; all per image, the Spearman correlation with the trained model's map of that image.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from medattn.explain.cam import CAM_METHODS
from medattn.explain.faithfulness import deletion_insertion
from medattn.explain.localisation import energy_inside, localisation_scores, uniform_baselines
from medattn.explain.maps import MapSet, RunMaps, own_attention_sets, spec_cam_sets
from medattn.explain.randomisation import cascade_groups, cascading_randomisation, spearman
from medattn.explain.sample import Sample
from medattn.explain.spec import ExplainSpec

LOCALISATION = ("energy", "pointing", "iou")
REFERENCES = ("uniform", "random", "oracle", "oracle_grid")  # pseudo methods: not maps of a model
ROW_COLUMNS = ("image_id", "method", "target", "metric", "value", "layer", "grid")


def _rows(ids: np.ndarray, method: str, target: str, metric: str, values: torch.Tensor,
          keep: np.ndarray | None = None, layer: str = "", grid: int = 0) -> pd.DataFrame:
    frame = pd.DataFrame({"image_id": ids, "method": method, "target": target, "metric": metric,
                          "value": values.detach().float().cpu().numpy(), "layer": layer, "grid": int(grid)})
    return frame if keep is None else frame[keep]


def artefact_union(sample: Sample) -> torch.Tensor | None:
    """(N, H, W) union of the artefact masks, None when the dataset has none."""
    if not sample.artefact_masks:
        return None
    return torch.stack([m > 0 for m in sample.artefact_masks.values()]).any(0).float()


def through_grid(maps: torch.Tensor, grid: int, upsample: str) -> torch.Tensor:
    """(N, H, W) maps averaged onto a grid x grid grid and upsampled back as the CAMs are."""
    coarse = F.adaptive_avg_pool2d(maps.float()[:, None], grid)
    options = {"align_corners": False} if upsample == "bilinear" else {}
    return F.interpolate(coarse, size=maps.shape[-2:], mode=upsample, **options)[:, 0]


def random_maps(shape: tuple[int, int, int], grid: int, upsample: str, seed: int) -> torch.Tensor:
    """(N, H, W) seeded i.i.d. uniform noise on a grid x grid grid, upsampled to (H, W) (grid 0: pixel noise)."""
    gen = torch.Generator().manual_seed(seed)
    n, h, w = shape
    if grid <= 0 or grid >= min(h, w):
        return torch.rand(n, h, w, generator=gen)
    options = {"align_corners": False} if upsample == "bilinear" else {}
    noise = torch.rand(n, 1, grid, grid, generator=gen)
    return F.interpolate(noise, size=(h, w), mode=upsample, **options)[:, 0]


def reference_grid(sets: list[MapSet]) -> tuple[str, int]:
    """The layer and grid of the first scored CAM set (the resolution the references are pushed through)."""
    cams = [s for s in sets if s.method in CAM_METHODS]
    return (cams[0].layer, cams[0].grid) if cams else ("", 0)


def localisation_rows(sets: list[MapSet], sample: Sample, spec: ExplainSpec) -> list[pd.DataFrame]:
    """Energy, pointing and IoU against the lesion masks with the uniform, random and oracle references; energy
    on the artefacts (images that have one)."""
    rows = []
    layer, grid = reference_grid(sets)
    shape = tuple(sample.images.shape[:1]) + tuple(sample.images.shape[-2:])
    noise = random_maps(shape, grid, spec.upsample, spec.seed)
    if sample.masks is not None:
        masks = sample.masks.float()
        references = {"random": (noise, layer, grid), "oracle": (masks, "", masks.shape[-1])}
        if grid:
            references["oracle_grid"] = (through_grid(masks, grid, spec.upsample), layer, grid)
        scored_sets = [(s.method, s.target, s.maps.cpu(), s.layer, s.grid) for s in sets]
        scored_sets += [(name, "predicted", m, lay, g) for name, (m, lay, g) in references.items()]
        for method, target, maps, lay, g in scored_sets:
            scores = localisation_scores(maps, masks, spec.tolerance, spec.top_fraction)
            rows += [_rows(sample.ids, method, target, m, scores[m], layer=lay, grid=g) for m in LOCALISATION]
        base = uniform_baselines(masks, spec.tolerance, spec.top_fraction)
        rows += [_rows(sample.ids, "uniform", "predicted", m, base[m]) for m in LOCALISATION]
    artefacts = artefact_union(sample)
    if artefacts is not None:
        present = (artefacts.flatten(1).sum(1) > 0).numpy()
        for s in sets:
            rows.append(_rows(sample.ids, s.method, s.target, "artefact_energy",
                              energy_inside(s.maps.cpu(), artefacts), present, s.layer, s.grid))
        rows.append(_rows(sample.ids, "random", "predicted", "artefact_energy", energy_inside(noise, artefacts),
                          present, layer, grid))
        rows.append(_rows(sample.ids, "uniform", "predicted", "artefact_energy",
                          artefacts.flatten(1).mean(1), present))
    return rows


def faithfulness_rows(model: nn.Module, x: torch.Tensor, sets: list[MapSet], spec: ExplainSpec,
                      ids: np.ndarray, predicted: torch.Tensor | None = None) -> list[pd.DataFrame]:
    """Deletion and insertion AUC and insertion gain of every scored map set and of a random pixel ranking, in
    image chunks."""
    jobs = [(s.method, s.target, s.maps, s.classes, s.layer, s.grid) for s in sets]
    if predicted is not None:
        gen = torch.Generator().manual_seed(spec.seed + 1)
        ranking = torch.rand(x.shape[0], *x.shape[-2:], generator=gen).to(x.device)
        jobs.append(("random", "predicted", ranking, predicted, "", int(x.shape[-1])))
    rows = []
    for method, target, maps, classes, layer, grid in jobs:
        parts = [deletion_insertion(model, x[i:i + spec.batch_size], maps[i:i + spec.batch_size],
                                    classes[i:i + spec.batch_size], spec.steps, spec.baseline)
                 for i in range(0, x.shape[0], spec.batch_size)]
        for metric in ("deletion_auc", "insertion_auc", "insertion_gain"):
            rows.append(_rows(ids, method, target, metric, torch.cat([p[metric] for p in parts]),
                              layer=layer, grid=grid))
    return rows


def randomisation_rows(random_model: nn.Module, backbone: str, x: torch.Tensor, run: RunMaps, spec: ExplainSpec,
                       ids: np.ndarray, metric: str = "randomisation_spearman") -> list[pd.DataFrame]:
    """Spearman correlation between each scored map and the other model's map for the same class (a randomised
    model: `randomisation_spearman`; the permuted-label model: `data_randomisation_spearman`)."""
    targets = {s.target: s.classes for s in run.sets if s.method in CAM_METHODS or s.layer == "input"}
    rand = spec_cam_sets(random_model, backbone, x, targets, spec)
    rand += own_attention_sets(random_model, x, run.predicted, spec.methods, spec.batch_size, spec.min_grid)[0]
    by_key = {(s.method, s.layer, s.target): s for s in rand}
    rows = []
    for s in scored(run.sets):
        other = by_key.get((s.method, s.layer, s.target))
        if other is not None:
            rows.append(_rows(ids, s.method, s.target, metric,
                              spearman(s.maps.cpu(), other.maps.cpu()), layer=s.layer, grid=s.grid))
    return rows


def cascade_rows(model: nn.Module, backbone: str, x: torch.Tensor, run: RunMaps, spec: ExplainSpec,
                 ids: np.ndarray) -> list[pd.DataFrame]:
    """Cascading randomisation (randomisation.cascading_randomisation, per stage, top down) of every scored CAM
    and pixel-resolution map set for the predicted class: metric `cascade_spearman:<stage>`, in cascade order."""
    from medattn.explain.attribution import PIXEL_METHODS
    from medattn.explain.targets import TargetLayer, candidate_stages

    stages, reshape = candidate_stages(model, backbone)
    names = {id(m): n for n, m in model.named_modules()}
    groups = cascade_groups(model, [names[id(s)] for s in stages])
    rows = []
    for s in scored(run.sets):
        if s.target != "predicted" or not (s.method in CAM_METHODS or s.method in PIXEL_METHODS):
            continue

        def explain(m: nn.Module, s: MapSet = s) -> torch.Tensor:
            if s.method in PIXEL_METHODS:
                return PIXEL_METHODS[s.method][2](m, x, s.classes)
            layer = TargetLayer(s.layer, dict(m.named_modules())[s.layer], reshape, s.grid, spec.upsample)
            return CAM_METHODS[s.method].compute(m, layer, x, s.classes)

        for group, rho in cascading_randomisation(model, explain, groups, seed=spec.seed):
            rows.append(_rows(ids, s.method, s.target, f"cascade_spearman:{group}", rho, layer=s.layer, grid=s.grid))
    return rows


def scored(sets: list[MapSet]) -> list[MapSet]:
    """The map sets scores are computed on."""
    return [s for s in sets if s.scored]


def score_run(model: nn.Module, random_model: nn.Module | None, backbone: str, x: torch.Tensor, run: RunMaps,
              sample: Sample, spec: ExplainSpec, cascade: bool = False,
              permuted_model: nn.Module | None = None) -> pd.DataFrame:
    """Every score of one run's maps, tidy (with the cascading randomisation curve when `cascade`, and the
    data-randomisation check when `permuted_model`, the model fine-tuned on permuted labels, is given)."""
    sets = scored(run.sets)
    rows = localisation_rows(sets, sample, spec)
    if spec.faithfulness:
        rows += faithfulness_rows(model, x, sets, spec, sample.ids, run.predicted)
    if random_model is not None:
        rows += randomisation_rows(random_model, backbone, x, run, spec, sample.ids)
    if permuted_model is not None:
        rows += randomisation_rows(permuted_model, backbone, x, run, spec, sample.ids, "data_randomisation_spearman")
    if cascade:
        rows += cascade_rows(model, backbone, x, run, spec, sample.ids)
    rows = [r for r in rows if len(r)]
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=list(ROW_COLUMNS))
