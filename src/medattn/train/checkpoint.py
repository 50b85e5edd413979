"""Checkpoints as safetensors with a JSON sidecar holding the full config; nothing is ever unpickled."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from medattn.rundir import layout, writer
from medattn.rundir.reader import read_sidecar


def save_checkpoint(state: dict[str, torch.Tensor], path: Path, sidecar: dict) -> Path:
    """Write `state` to `path` (.safetensors) and `sidecar` to the same name with .json; return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    save_file(tensors, str(path))
    writer.write_json(layout.sidecar_path(path), sidecar)
    return path


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint and its JSON sidecar (refused when written by a newer schema)."""
    sidecar = read_sidecar(layout.sidecar_path(Path(path)))
    return load_file(str(path)), sidecar


def build_from_sidecar(sidecar: dict) -> torch.nn.Module:
    """Build the untrained network a checkpoint's sidecar describes (architecture, classes, channels, size, stem)."""
    from medattn.models.build import build_model

    cfg, data = sidecar["model"], sidecar["data"]
    return build_model(
        cfg["backbone"], cfg["attention"], num_classes=data["num_classes"], in_chans=data["in_chans"],
        image_size=data["image_size"], drop_rate=cfg["drop_rate"], placement=cfg["placement"],
        **stem_arguments(cfg, data["image_size"]), **cfg["attention_kwargs"],
    )


def load_run_model(path: Path) -> tuple[torch.nn.Module, dict]:
    """Rebuild the model a checkpoint was saved from and load its weights; return (model in eval mode, sidecar)."""
    state, sidecar = load_checkpoint(Path(path))
    model = build_from_sidecar(sidecar)
    model.load_state_dict(state)
    return model.eval(), sidecar


def stem_arguments(cfg: dict, image_size: int) -> dict:
    """The stem a checkpoint was built with: recorded since the stem policy, else the rule that preceded it."""
    from medattn.models.stem import SMALL_IMAGE

    if "stem" in cfg:
        return {"small_stem": cfg["small_stem"], "stem": cfg["stem"]}
    small = cfg["small_stem"]
    return {"small_stem": small if small is not None else image_size <= SMALL_IMAGE}
