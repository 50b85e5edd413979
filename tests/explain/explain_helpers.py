"""Helpers for explanation tests: a tiny study directory (derm-synth, 32 px) with untrained checkpoints."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from medattn.data.dataset_spec import LoadContext, load_dataset
from medattn.train.augment import channel_stats
from medattn.train.checkpoint import save_checkpoint
from medattn.train.config import ModelConfig
from medattn.train.loop import make_model

DATA_SPEC = "synthetic:derm-synth?n=96&size=32&shortcut_corr=0.9&artefacts=patch"
MODELS = {"resnet18": ("resnet18", "none"), "resnet18+cbam": ("resnet18", "cbam"), "resnet18+se": ("resnet18", "se")}


def make_study(root: Path, models: dict[str, tuple[str, str]] = MODELS, seeds: tuple[int, ...] = (0, 1),
               data_spec: str = DATA_SPEC, dataset: str = "derm") -> Path:
    """Write one checkpoint (seeded random weights, norm scales in [0.5, 1.5]) per model x seed and results.csv
    as `medattn study` does; explanations only read these files, so no training is needed to test them."""
    data = load_dataset(data_spec, LoadContext.from_env())
    mean, std = channel_stats(data.images[data.indices("train")])
    rows = []
    for name, (backbone, attention) in models.items():
        for seed in seeds:
            rel = Path("artifacts") / dataset / name / f"seed{seed}"
            cfg = ModelConfig(backbone=backbone, attention=attention, small_stem=False)
            torch.manual_seed(seed)
            model = make_model(cfg, data)
            with torch.no_grad():  # timm zero-initialises each residual branch's last norm: give it a scale
                for module in model.modules():
                    if isinstance(module, torch.nn.BatchNorm2d):
                        module.weight.uniform_(0.5, 1.5)
            sidecar = {"model": cfg.model_dump(), "seed": seed,
                       "data": {"name": data.name, "class_names": data.class_names, "num_classes": data.num_classes,
                                "in_chans": data.in_chans, "image_size": data.image_size, "mean": mean.tolist(),
                                "std": std.tolist()}}
            save_checkpoint(model.state_dict(), root / rel / "model.safetensors", sidecar)
            for metric, value in (("balanced_accuracy", 0.5 + 0.01 * seed), ("auc", 0.5)):
                rows.append({"dataset": dataset, "dataset_spec": data_spec, "model": name, "backbone": backbone,
                             "attention": attention, "is_baseline": False, "stage": "final", "seed": seed,
                             "split": "test", "metric": metric, "value": value, "artifact_dir": rel.as_posix()})
    pd.DataFrame(rows).to_csv(root / "results.csv", index=False)
    return root
