"""Train the derm-synth validation studies for bench/features.py: shortcut_corr 0.95 and 0.5, two models, 3 seeds.

Writes one run directory per shortcut strength (results.csv + artifacts, the layout `medattn study run` writes)
under bench/results/features_synth/, with checkpoints at epochs 2 and 4 (`train.save_epochs`).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from medattn.data.dataset_spec import load_dataset
from medattn.train.config import ModelConfig, TrainConfig
from medattn.train.loop import train_run

OUT = Path(__file__).parent / "results" / "features_synth"
SPEC = "synthetic:derm-synth?n=1000&size=32&seed=0&shortcut_corr={corr}&artefacts=patch"
MODELS = (("resnet18", "none"), ("resnet18", "se"))
PLAIN_ONLY = os.environ.get("FEATURES_SYNTH_PLAIN_ONLY") == "1"  # to fit a busy CPU: the plain model only
SEEDS = range(3)


def train_study(corr: float, epochs: int = 5) -> Path:
    """Train every model x seed at one shortcut strength; return the run directory."""
    root = OUT / f"corr{corr}"
    spec = SPEC.format(corr=corr)
    data = load_dataset(spec)
    rows = []
    for backbone, attention in MODELS[:1] if PLAIN_ONLY else MODELS:
        model = backbone if attention == "none" else f"{backbone}+{attention}"
        for seed in SEEDS:
            out = root / "artifacts" / "synth" / model / f"seed{seed}"
            cfg = TrainConfig(epochs=epochs, batch_size=64, lr=2e-3, warmup_epochs=0, save_epochs=[2, 4],
                              progress=False, device="cpu")
            start = time.time()
            result = train_run(data, ModelConfig(backbone=backbone, attention=attention, small_stem=False), cfg,
                               seed, out)
            print(f"corr={corr} {model} seed={seed}: test bacc {result.metrics['test']['balanced_accuracy']:.3f} "
                  f"ood {result.metrics['test_ood']['balanced_accuracy']:.3f} ({time.time() - start:.0f}s)",
                  flush=True)
            for split, metrics in result.metrics.items():
                for metric, value in metrics.items():
                    rows.append({"study": f"synth{corr}", "dataset": "derm-synth", "dataset_spec": spec,
                                 "model": model, "backbone": backbone, "attention": attention,
                                 "is_baseline": attention == "none", "stage": "final", "seed": seed, "trial": 0,
                                 "status": "ok", "split": split, "metric": metric, "value": value,
                                 "artifact_dir": str(out.relative_to(root))})
    pd.DataFrame(rows).to_csv(root / "results.csv", index=False)
    return root


if __name__ == "__main__":
    torch.set_num_threads(1)
    for corr in map(float, sys.argv[1:] or ["0.95", "0.5"]):
        train_study(corr)
