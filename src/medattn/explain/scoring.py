"""Scores of one run's scored map sets: localisation (lesion and artefact masks), faithfulness, randomisation.

Rows are tidy (image_id, method, target, metric, value). The uniform-map baselines are stored as the pseudo
method `uniform`, so the tables show them beside the real methods.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from medattn.explain.cam import CAM_METHODS
from medattn.explain.faithfulness import deletion_insertion
from medattn.explain.localisation import energy_inside, localisation_scores, uniform_baselines
from medattn.explain.maps import MapSet, RunMaps, cam_sets, own_attention_sets
from medattn.explain.randomisation import spearman
from medattn.explain.sample import Sample
from medattn.explain.spec import ExplainSpec

LOCALISATION = ("energy", "pointing", "iou")


def _rows(ids: np.ndarray, method: str, target: str, metric: str, values: torch.Tensor,
          keep: np.ndarray | None = None) -> pd.DataFrame:
    frame = pd.DataFrame({"image_id": ids, "method": method, "target": target, "metric": metric,
                          "value": values.detach().float().cpu().numpy()})
    return frame if keep is None else frame[keep]


def artefact_union(sample: Sample) -> torch.Tensor | None:
    """(N, H, W) union of the artefact masks, None when the dataset has none."""
    if not sample.artefact_masks:
        return None
    return torch.stack([m > 0 for m in sample.artefact_masks.values()]).any(0).float()


def localisation_rows(sets: list[MapSet], sample: Sample, spec: ExplainSpec) -> list[pd.DataFrame]:
    """Energy, pointing and IoU against the lesion masks; energy on the artefacts (images that have one)."""
    rows = []
    if sample.masks is not None:
        masks = sample.masks.float()
        for s in sets:
            scores = localisation_scores(s.maps.cpu(), masks, spec.tolerance, spec.top_fraction)
            rows += [_rows(sample.ids, s.method, s.target, m, scores[m]) for m in LOCALISATION]
        base = uniform_baselines(masks, spec.tolerance, spec.top_fraction)
        rows += [_rows(sample.ids, "uniform", "predicted", m, base[m]) for m in LOCALISATION]
    artefacts = artefact_union(sample)
    if artefacts is not None:
        present = (artefacts.flatten(1).sum(1) > 0).numpy()
        for s in sets:
            rows.append(_rows(sample.ids, s.method, s.target, "artefact_energy",
                              energy_inside(s.maps.cpu(), artefacts), present))
        rows.append(_rows(sample.ids, "uniform", "predicted", "artefact_energy",
                          artefacts.flatten(1).mean(1), present))
    return rows


def faithfulness_rows(model: nn.Module, x: torch.Tensor, sets: list[MapSet], spec: ExplainSpec,
                      ids: np.ndarray) -> list[pd.DataFrame]:
    """Deletion and insertion AUC of every scored map set, in image chunks."""
    rows = []
    for s in sets:
        parts = [deletion_insertion(model, x[i:i + spec.batch_size], s.maps[i:i + spec.batch_size],
                                    s.classes[i:i + spec.batch_size], spec.steps, spec.baseline)
                 for i in range(0, x.shape[0], spec.batch_size)]
        for metric in ("deletion_auc", "insertion_auc"):
            rows.append(_rows(ids, s.method, s.target, metric, torch.cat([p[metric] for p in parts])))
    return rows


def randomisation_rows(random_model: nn.Module, backbone: str, x: torch.Tensor, run: RunMaps, spec: ExplainSpec,
                       ids: np.ndarray) -> list[pd.DataFrame]:
    """Spearman correlation between each scored map and the randomised model's map for the same class."""
    targets = {s.target: s.classes for s in run.sets if s.method in CAM_METHODS}
    rand = cam_sets(random_model, backbone, x, targets, spec.methods, spec.batch_size)
    rand += own_attention_sets(random_model, x, run.predicted, spec.methods, spec.batch_size)[0]
    by_key = {(s.method, s.layer, s.target): s for s in rand}
    rows = []
    for s in scored(run.sets):
        other = by_key.get((s.method, s.layer, s.target))
        if other is not None:
            rows.append(_rows(ids, s.method, s.target, "randomisation_spearman",
                              spearman(s.maps.cpu(), other.maps.cpu())))
    return rows


def scored(sets: list[MapSet]) -> list[MapSet]:
    """The map sets scores are computed on."""
    return [s for s in sets if s.scored]


def score_run(model: nn.Module, random_model: nn.Module | None, backbone: str, x: torch.Tensor, run: RunMaps,
              sample: Sample, spec: ExplainSpec) -> pd.DataFrame:
    """Every score of one run's maps, tidy."""
    sets = scored(run.sets)
    rows = localisation_rows(sets, sample, spec)
    if spec.faithfulness:
        rows += faithfulness_rows(model, x, sets, spec, sample.ids)
    if random_model is not None:
        rows += randomisation_rows(random_model, backbone, x, run, spec, sample.ids)
    rows = [r for r in rows if len(r)]
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["image_id", "method", "target", "metric", "value"])
