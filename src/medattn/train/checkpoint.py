"""Checkpoints as safetensors with a JSON sidecar holding the full config; nothing is ever unpickled."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def save_checkpoint(state: dict[str, torch.Tensor], path: Path, sidecar: dict) -> Path:
    """Write `state` to `path` (.safetensors) and `sidecar` to the same name with .json; return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    save_file(tensors, str(path))
    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2, default=str))
    return path


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint and its JSON sidecar."""
    return load_file(str(path)), json.loads(Path(path).with_suffix(".json").read_text())


def load_model(path: Path) -> tuple[torch.nn.Module, dict]:
    """Rebuild the model a checkpoint was saved from and load its weights; return (model, sidecar)."""
    from medattn.models.build import build_model

    state, sidecar = load_checkpoint(Path(path))
    cfg, data = sidecar["model"], sidecar["data"]
    model = build_model(
        cfg["backbone"], cfg["attention"], num_classes=data["num_classes"], in_chans=data["in_chans"],
        image_size=data["image_size"], drop_rate=cfg["drop_rate"], placement=cfg["placement"],
        **stem_arguments(cfg, data["image_size"]), **cfg["attention_kwargs"],
    )
    model.load_state_dict(state)
    return model.eval(), sidecar


def stem_arguments(cfg: dict, image_size: int) -> dict:
    """The stem a checkpoint was built with: recorded since the stem policy, else the rule that preceded it."""
    from medattn.models.stem import SMALL_IMAGE

    if "stem" in cfg:
        return {"small_stem": cfg["small_stem"], "stem": cfg["stem"]}
    small = cfg["small_stem"]
    return {"small_stem": small if small is not None else image_size <= SMALL_IMAGE}
