"""A tiny study run directory (results.csv + artifacts) made by the real training loop on derm-synth."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from medattn.data.dataset_spec import load_dataset
from medattn.train.config import ModelConfig, TrainConfig
from medattn.train.loop import train_run

SYNTH = "synthetic:derm-synth?n={n}&size=32&seed=0&shortcut_corr={corr}&artefacts=patch"


def make_run_dir(root: Path, corr: float = 0.95, n: int = 300, models=(("resnet18", "none"),), seeds=(0,),
                 epochs: int = 1, save_epochs=(1,)) -> Path:
    """Train each (backbone, attention) x seed on a small derm-synth set and write results.csv like a study does."""
    torch.set_num_threads(1)
    spec = SYNTH.format(n=n, corr=corr)
    data = load_dataset(spec)
    rows = []
    for backbone, attention in models:
        model = backbone if attention == "none" else f"{backbone}+{attention}"
        for seed in seeds:
            out = root / "artifacts" / "synth" / model / f"seed{seed}-trial0"
            cfg = TrainConfig(epochs=epochs, batch_size=64, lr=3e-3, warmup_epochs=0, save_epochs=list(save_epochs),
                              progress=False, device="cpu", augment={"enabled": False},
                              precision="fp32")  # the thresholds of these tests were measured in fp32
            result = train_run(data, ModelConfig(backbone=backbone, attention=attention, small_stem=False), cfg,
                               seed, out)
            for split, metrics in result.metrics.items():
                for metric, value in metrics.items():
                    rows.append({"study": "t", "dataset": "synth", "dataset_spec": spec, "model": model,
                                 "backbone": backbone, "attention": attention, "is_baseline": attention == "none",
                                 "stage": "final", "seed": seed, "trial": 0, "status": "ok", "split": split,
                                 "metric": metric, "value": value,
                                 "artifact_dir": str(out.relative_to(root))})
    pd.DataFrame(rows).to_csv(root / "results.csv", index=False)
    return root
