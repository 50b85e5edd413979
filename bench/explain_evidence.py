"""Evidence for the explanation metrics on real data: HAM10000 with lesion masks (trains small models; minutes).

HAM10000 (lesion masks) at 64 px: ResNet-18 and ResNet-18+CBAM trained a few epochs; Grad-CAM energy inside the
lesion vs the mask-area (uniform-map) baseline, mean and 95 % CI of the per-image difference. (The synthetic
check, strong vs no shortcut, is examples/derm-synth-shortcuts.yaml + bench/shortcut_evidence.py.)
Writes bench/results/explain_evidence.json and prints a table.

    python bench/explain_evidence.py --epochs 3 --train-images 3000
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from medattn.data.dataset_spec import LoadContext, load_dataset
from medattn.explain.maps import explain_model
from medattn.explain.runner import normalised
from medattn.explain.sample import draw_sample
from medattn.explain.scoring import score_run
from medattn.explain.spec import ExplainSpec
from medattn.train.checkpoint import load_run_model
from medattn.train.config import ModelConfig, TrainConfig
from medattn.train.loop import train_run

HAM = ("folder:{root}/ham10000?images=images&labels=HAM10000_metadata.csv&id=image_id&label=dx&group=lesion_id"
       "&masks=masks&mask_pattern={{id}}_segmentation.png&size=64")


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--train-images", type=int, default=3000, help="HAM10000 training images used (subsample)")
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "explain_evidence.json")
    p.add_argument("--work", type=Path, default=Path("/tmp/medattn-explain-evidence"))
    return p.parse_args()


def ci(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95 % t-interval."""
    values = values[np.isfinite(values)]
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean()), float(values.mean() - half), float(values.mean() + half)


def train_and_score(data, attention: str, seed: int, epochs: int, samples: int, work: Path) -> dict:
    """Train one model, explain it with Grad-CAM (predicted class) on a shared test sample, return scores."""
    out = work / f"{data.name}-{attention}-{seed}"
    cfg = ModelConfig(backbone="resnet18", attention=attention, small_stem=False)
    train = TrainConfig(epochs=epochs, batch_size=64, warmup_epochs=0, lr=3e-3, progress=False, class_weighted=True)
    start = time.perf_counter()
    result = train_run(data, cfg, train, seed, out)
    model, sidecar = load_run_model(out / "model.safetensors")
    sample = draw_sample(data, "test", samples, 0)
    spec = ExplainSpec(methods=["gradcam"], targets=["predicted"], faithfulness=False, randomisation=False,
                       device="cpu")
    x = normalised(sample, sidecar, torch.device("cpu"))
    run = explain_model(model, "resnet18", x, sample.labels, spec)
    scores = score_run(model, None, "resnet18", x, run, sample, spec)
    return {"test_balanced_accuracy": result.metrics["test"]["balanced_accuracy"], "scores": scores,
            "seconds": time.perf_counter() - start}


def per_image(scores, method: str, metric: str) -> np.ndarray:
    """Values of one (method, metric) ordered by image id."""
    sub = scores[(scores["method"] == method) & (scores["metric"] == metric)].sort_values("image_id")
    return sub["value"].to_numpy(float)


def main() -> None:
    """Train and score each model; print and write the results after each."""
    args = parse_args()
    root = Path(os.environ.get("MEDATTN_SHARED_DATA", "../shared/data"))
    ctx = LoadContext.from_env()
    report: dict = {"config": {k: str(v) for k, v in vars(args).items()}, "ham10000": []}

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, default=float))

    ham = load_dataset(HAM.format(root=root), ctx)
    rng = np.random.default_rng(0)
    train_idx = np.flatnonzero(ham.split == "train")
    keep = np.sort(np.concatenate([rng.choice(train_idx, min(args.train_images, len(train_idx)), replace=False),
                                   np.flatnonzero(ham.split != "train")]))
    ham = ham.subset(keep)
    for attention in ("none", "cbam"):
        for seed in args.seeds:
            r = train_and_score(ham, attention, seed, args.epochs, args.samples, args.work)
            energy, base = per_image(r["scores"], "gradcam", "energy"), per_image(r["scores"], "uniform", "energy")
            row = {"model": f"resnet18+{attention}", "seed": seed, "test_bal_acc": r["test_balanced_accuracy"],
                   "energy": ci(energy), "baseline": ci(base), "difference": ci(energy - base),
                   "seconds": r["seconds"]}
            report["ham10000"].append(row)
            print("HAM10000", json.dumps(row), flush=True)
            save()


if __name__ == "__main__":
    main()
