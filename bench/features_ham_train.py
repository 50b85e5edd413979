"""Train ResNet-18 and ResNet-18 + SE on real HAM10000 at 64 px for bench/features.py (checkpoints at 1, 2, 3).

Writes a run directory (results.csv + artifacts, the layout `medattn study run` writes) under
bench/results/features_ham/. Data: $MEDATTN_SHARED_DATA/ham10000 (never copied into the repository).
To fit a shared 2-core CPU, the models train on a lesion-grouped subset: `TRAIN` training and `VAL` validation
images drawn from the seeded grouped split, and the whole test split; the subset is a labels CSV with a split
column written beside the results (so `medattn features` reloads exactly these images).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from medattn.data.dataset_spec import LoadContext, load_dataset
from medattn.train.config import ModelConfig, TrainConfig
from medattn.train.loop import train_run

OUT = Path(__file__).parent / "results" / "features_ham"
SPEC = ("folder:{root}/ham10000?images=images&labels=HAM10000_metadata.csv&id=image_id&label=dx&group=lesion_id"
        "&masks=masks&mask_pattern={{id}}_segmentation.png&size=64&workers=2")
MODELS = (("resnet18", "none"), ("resnet18", "se"))
TRAIN, VAL = 1200, 300


def subset_csv(root: str) -> Path:
    """A labels CSV of a seeded subset (TRAIN train, VAL val images, every test image) with a `split` column."""
    full = load_dataset(SPEC.format(root=root), LoadContext.from_env(cache_dir=os.environ.get("MEDATTN_CACHE")))
    meta = pd.read_csv(Path(root) / "ham10000" / "HAM10000_metadata.csv")
    meta["split"] = full.split
    rng = np.random.default_rng(0)
    keep = [meta[meta["split"] == "test"]]
    for split, n in (("train", TRAIN), ("val", VAL)):
        part = meta[meta["split"] == split]
        keep.append(part.iloc[np.sort(rng.choice(len(part), n, replace=False))])
    OUT.mkdir(parents=True, exist_ok=True)
    path = (OUT / "ham10000_subset.csv").absolute()
    pd.concat(keep).to_csv(path, index=False)
    return path


def main(epochs: int = 3, seed: int = 0) -> None:
    """Train both models once and write results.csv."""
    root = os.environ.get("MEDATTN_SHARED_DATA", "../shared/data")
    spec = SPEC.format(root=root).replace("labels=HAM10000_metadata.csv", f"labels={subset_csv(root)}&split=split")
    data = load_dataset(spec, LoadContext.from_env(cache_dir=os.environ.get("MEDATTN_CACHE")))
    rows = []
    for backbone, attention in MODELS:
        model = backbone if attention == "none" else f"{backbone}+{attention}"
        out = OUT / "artifacts" / "ham10000" / model / f"seed{seed}"
        cfg = TrainConfig(epochs=epochs, batch_size=128, lr=2e-3, warmup_epochs=0, class_weighted=True,
                          save_epochs=list(range(1, epochs + 1)), progress=False, device="cpu")
        start = time.time()
        result = train_run(data, ModelConfig(backbone=backbone, attention=attention, small_stem=False), cfg, seed,
                           out)
        print(f"{model}: test bacc {result.metrics['test']['balanced_accuracy']:.3f} ({time.time() - start:.0f}s)",
              flush=True)
        for split, metrics in result.metrics.items():
            for metric, value in metrics.items():
                rows.append({"study": "ham", "dataset": "ham10000", "dataset_spec": spec, "model": model,
                             "backbone": backbone, "attention": attention, "is_baseline": attention == "none",
                             "stage": "final", "seed": seed, "trial": 0, "status": "ok", "split": split,
                             "metric": metric, "value": value, "artifact_dir": str(out.relative_to(OUT))})
    pd.DataFrame(rows).to_csv(OUT / "results.csv", index=False)
    (OUT / "study.json").write_text(json.dumps({"cache_dir": os.environ.get("MEDATTN_CACHE")}))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
