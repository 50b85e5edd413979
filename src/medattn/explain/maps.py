"""All maps of one trained model on the sample: the CAM family per target class, attention maps, rollout."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from medattn.explain.attention_maps import attention_maps, rollout
from medattn.explain.cam import CAM_METHODS
from medattn.explain.spec import ExplainSpec
from medattn.explain.targets import ATTENTION_MIN_GRID, MIN_GRID, target_layer


@dataclass
class MapSet:
    """(N, H, W) maps of one method / layer / target for every sample image, the class each one explains, the
    grid the maps were upsampled from (the shorter side; the image size for pixel-resolution methods) and whether
    that grid is below the minimum (scores then carry a warning)."""

    method: str
    layer: str
    target: str
    maps: torch.Tensor
    classes: torch.Tensor
    scored: bool = True  # the map set the scores use (attention: the deepest module only)
    grid: int = 0
    coarse: bool = False


@dataclass
class RunMaps:
    """One model's predictions on the sample and every map set, with notes on what does not apply."""

    probs: torch.Tensor
    predicted: torch.Tensor
    sets: list[MapSet] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _chunks(x: torch.Tensor, size: int) -> list[slice]:
    return [slice(s, s + size) for s in range(0, x.shape[0], size)]


def predict(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(N, K) class probabilities."""
    with torch.no_grad():
        return torch.cat([model(x[s]).float().softmax(1) for s in _chunks(x, batch_size)])


def cam_sets(model: nn.Module, backbone: str, x: torch.Tensor, targets: dict[str, torch.Tensor],
             methods: list[str], batch_size: int, layer: str = "auto", min_grid: int = MIN_GRID,
             force_layer: bool = False, upsample: str = "bilinear") -> list[MapSet]:
    """One MapSet per (CAM method, target), on the chosen target layer (targets.target_layer)."""
    wanted = [m for m in methods if m in CAM_METHODS]
    if not wanted:
        return []
    chosen = target_layer(model, backbone, x.shape[-1], x.shape[1], layer, min_grid, force_layer, upsample)
    sets = []
    for name in wanted:
        compute = CAM_METHODS[name].compute
        for target, classes in targets.items():
            maps = torch.cat([compute(model, chosen, x[s], classes[s]) for s in _chunks(x, batch_size)])
            sets.append(MapSet(name, chosen.name, target, maps, classes, grid=chosen.grid, coarse=chosen.coarse))
    return sets


def pixel_sets(model: nn.Module, x: torch.Tensor, targets: dict[str, torch.Tensor], methods: list[str],
               batch_size: int) -> list[MapSet]:
    """One MapSet per (pixel-resolution method, target): layer 'input', grid = the image side."""
    from medattn.explain.attribution import PIXEL_METHODS

    sets = []
    for name in [m for m in methods if m in PIXEL_METHODS]:
        compute = PIXEL_METHODS[name][2]
        for target, classes in targets.items():
            maps = torch.cat([compute(model, x[s], classes[s]) for s in _chunks(x, max(1, batch_size // 4))])
            sets.append(MapSet(name, "input", target, maps, classes, grid=int(min(x.shape[-2:]))))
    return sets


def spec_cam_sets(model: nn.Module, backbone: str, x: torch.Tensor, targets: dict[str, torch.Tensor],
                  spec: ExplainSpec) -> list[MapSet]:
    """cam_sets with the layer, minimum grid and upsampling of `spec`, and the pixel-resolution methods."""
    return cam_sets(model, backbone, x, targets, spec.methods, spec.batch_size, spec.layer, spec.min_grid,
                    spec.force_layer, spec.upsample) + pixel_sets(model, x, targets, spec.methods, spec.batch_size)


def own_attention_sets(model: nn.Module, x: torch.Tensor, predicted: torch.Tensor, methods: list[str],
                       batch_size: int, min_grid: int = MIN_GRID) -> tuple[list[MapSet], list[str]]:
    """MapSets of the model's attention modules (target 'predicted') and its rollout, plus what did not apply."""
    want_attention, want_rollout = "attention" in methods, "rollout" in methods
    if not (want_attention or want_rollout):
        return [], []
    per_layer: dict[str, list[torch.Tensor]] = {}
    grids: dict[str, int] = {}
    rolled: list[torch.Tensor] = []
    for s in _chunks(x, batch_size):
        modules, recorded = attention_maps(model, x[s])
        for m in modules:
            per_layer.setdefault(m.layer, []).append(m.maps)
            grids[m.layer] = min(m.grid) if m.grid else 0
        r = rollout(recorded, tuple(x.shape[-2:])) if want_rollout else None
        if r is not None:
            rolled.append(r)
    sets, notes = [], []
    if want_attention:
        if not per_layer:
            notes.append("attention: n/a (no spatial attention map: plain CNN or channel-only mechanism)")
        names = list(per_layer)
        # scored: the deepest module whose map is at least 2 x 2 (a 1 x 1 gate is constant)
        deepest = next((n for n in reversed(names) if grids[n] >= ATTENTION_MIN_GRID), names[-1] if names else None)
        for name in names:
            sets.append(MapSet("attention", name, "predicted", torch.cat(per_layer[name]), predicted,
                               scored=name == deepest, grid=grids[name], coarse=grids[name] < min_grid))
    if want_rollout:
        if rolled:
            sets.append(MapSet("rollout", "", "predicted", torch.cat(rolled), predicted))
        else:
            notes.append("rollout: n/a (only the ViT baseline has attention rollout)")
    return sets, notes


def explain_model(model: nn.Module, backbone: str, x: torch.Tensor, labels: torch.Tensor,
                  spec: ExplainSpec) -> RunMaps:
    """Every requested map of `model` on the normalised sample `x`."""
    probs = predict(model, x, spec.batch_size)
    predicted = probs.argmax(1)
    targets = {"predicted": predicted, "true": labels.to(x.device)}
    targets = {t: targets[t] for t in spec.targets}
    run = RunMaps(probs, predicted)
    run.sets += spec_cam_sets(model, backbone, x, targets, spec)
    sets, notes = own_attention_sets(model, x, predicted, spec.methods, spec.batch_size, spec.min_grid)
    run.sets += sets
    run.notes += notes
    return run


def index_table(run: RunMaps, ids: np.ndarray, labels: torch.Tensor) -> pd.DataFrame:
    """The index.csv rows of a run's map sets, in the order of their maps."""
    predicted, labels = run.predicted.cpu().numpy(), labels.cpu().numpy()
    probs = run.probs.cpu()
    frames = []
    for s in run.sets:
        classes = s.classes.cpu()
        frames.append(pd.DataFrame({
            "image_id": ids, "method": s.method, "layer": s.layer, "target": s.target,
            "target_class": classes.numpy(), "predicted": predicted, "label": labels,
            "probability": probs.gather(1, classes.view(-1, 1))[:, 0].numpy(),
        }))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["image_id", "method", "layer", "target", "target_class", "predicted", "label", "probability"])
