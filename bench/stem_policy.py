"""Stem study: validation balanced accuracy and training cost of each candidate stem, per image size range.

For ResNet-18 on PneumoniaMNIST-28 and on HAM10000 at 64 px, trains every candidate stem (models/stem.py: s1,
s2, standard) with the training loop medattn uses (train_run: default augmentation, AdamW, cosine schedule,
auto precision) for a few epochs and several seeds, on a stratified subsample of the training split (the
validation split is kept whole), and reports per stem: mean and sd of validation balanced accuracy, forward
GFLOPs per image (load-independent cost), and measured training images/s (the stems of one seed run back to
back, so machine load hits them alike). The default policy in models/stem.py is read off this table.

    python bench/stem_policy.py [--seeds 3] [--epochs 3] [--pneumonia-train 800] [--ham-train 600] [--ham-val 400]
                                [--ham-epochs N] [--only pneumonia|ham] [--stems s1 s2 standard] [--out JSON]

HAM10000 runs are class-weighted (7 classes, nv 67 %, df 1 %), as a user training for balanced accuracy would.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from medattn.data.dataset_spec import LoadContext, load_dataset
from medattn.data.imageset import ImageSet
from medattn.models.cost import forward_flops
from medattn.models.stem import STEMS
from medattn.train.config import ModelConfig, TrainConfig
from medattn.train.loop import train_run

REPO = Path(__file__).resolve().parents[1]
HAM = ("folder:{root}/ham10000?images=images&labels=HAM10000_metadata.csv&id=image_id&label=dx"
       "&group=lesion_id&size=64")


def stratified_subset(data: ImageSet, sizes: dict[str, int | None], seed: int = 0) -> ImageSet:
    """Train and val splits cut to about `sizes[split]` images each (class proportions kept; None: whole)."""
    rng = np.random.default_rng(seed)
    labels = data.labels.cpu().numpy()
    keep = []
    for split in ("train", "val"):
        members = np.flatnonzero(data.split == split)
        n = sizes.get(split)
        if n is None or n >= len(members):
            keep.append(members)
            continue
        for c in np.unique(labels[members]):
            of_class = members[labels[members] == c]
            keep.append(rng.choice(of_class, max(1, round(n * len(of_class) / len(members))), replace=False))
    return data.subset(np.sort(np.concatenate(keep)))


def study(data: ImageSet, label: str, seeds: int, epochs: int, results: list[dict], out: Path,
          stems: tuple[str, ...] = STEMS, class_weighted: bool = False) -> None:
    """Train every stem for every seed; append one row per run to `results` (and rewrite the JSON)."""
    for seed in range(seeds):
        for stem in stems:
            start = time.perf_counter()
            run = train_run(data, ModelConfig(backbone="resnet18", stem=stem),
                            TrainConfig(epochs=epochs, batch_size=64, progress=False, class_weighted=class_weighted),
                            seed, None)
            results.append({
                "dataset": label, "image_size": data.image_size, "stem": stem, "seed": seed,
                "val_balanced_accuracy": run.metrics["val"]["balanced_accuracy"],
                "train_images_per_s": run.timing["train_images_per_s"], "precision": run.hardware["precision"],
                "gflops_per_image": forward_flops("resnet18", "none", data.image_size, data.in_chans,
                                                  data.num_classes, stem=stem) / 1e9,
                "wall_s": time.perf_counter() - start})
            print(json.dumps(results[-1]), flush=True)
            out.write_text(json.dumps({"runs": results, "threads": torch.get_num_threads(),
                                       "load_average": os.getloadavg()}, indent=2))


def summary(results: list[dict]) -> list[dict]:
    """Mean/sd of validation balanced accuracy and median img/s per (dataset, stem)."""
    rows = []
    for dataset in dict.fromkeys(r["dataset"] for r in results):
        for stem in STEMS:
            runs = [r for r in results if r["dataset"] == dataset and r["stem"] == stem]
            if not runs:
                continue
            acc = [r["val_balanced_accuracy"] for r in runs]
            rows.append({"dataset": dataset, "stem": stem, "seeds": len(runs), "val_bacc_mean": statistics.mean(acc),
                         "val_bacc_sd": statistics.stdev(acc) if len(acc) > 1 else float("nan"),
                         "gflops_per_image": runs[0]["gflops_per_image"],
                         "train_images_per_s": statistics.median(r["train_images_per_s"] for r in runs)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("MEDATTN_SHARED_DATA",
                                                                             REPO.parent / "shared" / "data")))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--pneumonia-train", type=int, default=800)
    parser.add_argument("--ham-train", type=int, default=600)
    parser.add_argument("--ham-val", type=int, default=400)
    parser.add_argument("--ham-epochs", type=int, default=None, help="HAM10000 epochs (default: --epochs)")
    parser.add_argument("--stems", nargs="+", choices=STEMS, default=list(STEMS))
    parser.add_argument("--only", choices=["pneumonia", "ham"], default=None)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "stem_policy.json")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    ctx = LoadContext.from_env(args.data_dir / "medmnist")
    results: list[dict] = []
    if args.only in (None, "pneumonia"):
        pneumonia = load_dataset("medmnist:pneumoniamnist", ctx)
        study(stratified_subset(pneumonia, {"train": args.pneumonia_train}), "PneumoniaMNIST-28", args.seeds,
              args.epochs, results, args.out, tuple(args.stems))
    if args.only in (None, "ham"):
        ham = load_dataset(HAM.format(root=args.data_dir), LoadContext.from_env(args.data_dir))
        # class-weighted, as a user would train HAM10000's 7 classes (nv 67 %, df 1 %) for balanced accuracy
        study(stratified_subset(ham, {"train": args.ham_train, "val": args.ham_val}), "HAM10000-64", args.seeds,
              args.ham_epochs or args.epochs, results, args.out, tuple(args.stems), class_weighted=True)
    table = Table(title=f"stem policy: ResNet-18, {args.epochs} epochs (HAM10000: {args.ham_epochs or args.epochs}), "
                        f"{args.seeds} seeds, "
                        f"{torch.get_num_threads()} thread(s), load average {os.getloadavg()[0]:.1f}")
    for col in ("dataset", "stem", "seeds", "val bal. acc.", "GFLOPs/img", "train img/s"):
        table.add_column(col, justify="right")
    rows = summary(results)
    for r in rows:
        table.add_row(r["dataset"], r["stem"], str(r["seeds"]), f"{r['val_bacc_mean']:.3f} ± {r['val_bacc_sd']:.3f}",
                      f"{r['gflops_per_image']:.3f}", f"{r['train_images_per_s']:.0f}")
    Console().print(table)
    args.out.write_text(json.dumps({"runs": results, "summary": rows, "threads": torch.get_num_threads(),
                                    "load_average": os.getloadavg()}, indent=2))


if __name__ == "__main__":
    main()
