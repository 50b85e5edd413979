"""Does bf16 autocast change what a model learns? PneumoniaMNIST-28, ResNet-18, the same seeds in fp32 and bf16.

Trains with medattn's training loop (default stem, augmentation, AdamW, cosine schedule) on the official
PneumoniaMNIST files, once per seed and precision, and compares test balanced accuracy bf16 vs fp32 paired by seed
with the stats module (`compare_models`: paired t, Holm, ROPE +-1 pp), printing its verdict sentence (and the
same for validation balanced accuracy). The bf16
runs are labelled as the "variant" of the fp32 runs so that the module pairs them like attention vs plain.

    python bench/precision_accuracy.py [--seeds 3] [--epochs 5] [--stem auto|s1|s2|standard] [--out JSON]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pandas as pd

from medattn.data.dataset_spec import LoadContext, load_dataset
from medattn.models.stem import STEMS
from medattn.stats.compare import compare_models
from medattn.stats.verdict import describe_comparisons
from medattn.train.config import ModelConfig, TrainConfig
from medattn.train.loop import train_run

REPO = Path(__file__).resolve().parents[1]
PRECISIONS = ("fp32", "bf16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("MEDATTN_SHARED_DATA",
                                                                             REPO.parent / "shared" / "data")))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--stem", choices=["auto", *STEMS], default="auto")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "precision_accuracy.json")
    args = parser.parse_args()
    data = load_dataset("medmnist:pneumoniamnist", LoadContext(data_dir=args.data_dir / "medmnist"))
    rows, runs = [], []
    for seed in range(args.seeds):
        for precision in PRECISIONS:
            run = train_run(data, ModelConfig(backbone="resnet18", stem=args.stem),
                            TrainConfig(epochs=args.epochs, precision=precision, progress=False), seed, None)
            runs.append({"seed": seed, "precision": precision, "stem": run.hardware["stem"],
                         "train_images_per_s": run.timing["train_images_per_s"],
                         **{f"{split}_balanced_accuracy": run.metrics[split]["balanced_accuracy"]
                            for split in ("val", "test")}})
            print(json.dumps(runs[-1]), flush=True)
            for split in ("val", "test"):
                rows.append({"dataset": "pneumoniamnist-28", "model": f"resnet18 {precision}", "backbone": "resnet18",
                             "attention": "none" if precision == "fp32" else precision, "is_baseline": False,
                             "seed": seed, "split": split, "metric": "balanced_accuracy",
                             "value": run.metrics[split]["balanced_accuracy"]})
    sentences = [sentence for split in ("test", "val") for sentence in
                 describe_comparisons(compare_models(pd.DataFrame(rows), split=split, metrics=["balanced_accuracy"]))]
    print("\n".join(sentences))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": runs, "comparison": sentences}, indent=2))


if __name__ == "__main__":
    main()
