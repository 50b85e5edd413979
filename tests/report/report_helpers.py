"""A synthetic study run directory with planted effects, written the way the study engine writes one.

Models per dataset: ``resnet18`` (plain), ``resnet18+cbam`` (planted +3 pp balanced accuracy on test),
``resnet18+se`` (no effect), ``vit`` (baseline, -2 pp). Every run gets exact prediction files: per class,
the number of correct samples is fixed by the run's target balanced accuracy, so the tidy values (computed
from the predictions with medattn's own metrics) and the predictions agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medattn.report import ReportPaths
from medattn.train.metrics import classification_metrics

MODELS = {  # name: (backbone, attention, is_baseline, planted effect on test, costs)
    "resnet18": ("resnet18", "none", False, 0.0, (11.2e6, 1.82e9, 2400, 9100, 410)),
    "resnet18+cbam": ("resnet18", "cbam", False, 0.03, (11.6e6, 1.84e9, 1900, 7300, 455)),
    "resnet18+se": ("resnet18", "se", False, 0.0, (11.3e6, 1.83e9, 2100, 8400, 430)),
    "vit": ("vit_tiny_patch16_224", "none", True, -0.02, (5.7e6, 1.26e9, 2900, 9900, 380)),
}
CLASS_OFFSETS = {2: (0.04, -0.04), 3: (0.06, -0.09, 0.03)}  # per-class recall around the target; mean zero
HYPERPARAMETERS = {"resnet18": (3.1e-3, 0.012), "resnet18+cbam": (1.7e-3, 0.021), "resnet18+se": (2.2e-3, 0.04),
                   "vit": (4.0e-4, 0.05)}


@dataclass
class DatasetPlan:
    """One synthetic dataset: class names, samples per class and split, base accuracy, OOD effects."""

    name: str
    classes: tuple[str, ...]
    per_class: dict[str, int]
    base: float
    ood_shift: float = -0.08
    ood_effects: dict[str, float] = field(default_factory=dict)


DERM = DatasetPlan("derm", ("nevus", "melanoma", "keratosis"), {"val": 60, "test": 200, "test_ood": 120}, 0.78,
                   ood_effects={"resnet18+cbam": 0.01})
PATH = DatasetPlan("path", ("normal", "tumor"), {"val": 60, "test": 240}, 0.84)


def _predictions(labels: np.ndarray, target: float, difficulty: np.ndarray, k: int,
                 rng: np.random.Generator) -> pd.DataFrame:
    """Return a prediction table whose recall of class c is round((target + offset_c) * size_c) / size_c."""
    n = len(labels)
    offsets = CLASS_OFFSETS[k]
    correct = np.zeros(n, bool)
    for c in range(k):
        idx = np.flatnonzero(labels == c)
        score = difficulty[idx] + rng.normal(0, 0.15, len(idx))
        n_right = int(round(np.clip(target + offsets[c], 0, 1) * len(idx)))
        correct[idx[np.argsort(score)[:n_right]]] = True
    pred = labels.copy()
    wrong = ~correct
    pred[wrong] = (labels[wrong] + rng.integers(1, k, wrong.sum())) % k
    probs = rng.dirichlet(np.ones(k), n) * 0.4
    top = rng.uniform(0.45, 0.95, n)
    probs[np.arange(n), pred] += top
    probs /= probs.sum(1, keepdims=True)
    table = pd.DataFrame({"index": np.arange(n), "label": labels})
    for j in range(k):
        table[f"prob_{j}"] = probs[:, j]
    return table


def make_run_dir(root: Path, datasets: tuple[DatasetPlan, ...] = (DERM, PATH), seeds: int = 5,
                 fmt: str = "parquet", seed: int = 0) -> Path:
    """Write a synthetic RUN_DIR (results table, study.json, per-run artifacts) under ``root``; return it."""
    rng = np.random.default_rng(seed)
    rows = []
    for ds in datasets:
        k = len(ds.classes)
        labels = {split: np.repeat(np.arange(k), n) for split, n in ds.per_class.items()}
        difficulty = {split: rng.uniform(0, 1, len(y)) for split, y in labels.items()}
        seed_effect = rng.normal(0, 0.01, seeds)
        for model, (backbone, attention, baseline, effect, costs) in MODELS.items():
            for s in range(seeds):
                run = Path("runs") / ds.name / model.replace("+", "_") / f"seed{s}"
                (root / run).mkdir(parents=True, exist_ok=True)
                target = ds.base + seed_effect[s] + effect + rng.normal(0, 0.004)
                metrics = {}
                for split, y in labels.items():
                    t = target
                    if split == "val":
                        t = target - 0.01
                    elif split != "test":
                        t = target + ds.ood_shift - effect + ds.ood_effects.get(model, 0.0)
                    table = _predictions(y, t, difficulty[split], k, rng)
                    table.to_csv(root / run / f"predictions_{split}.csv", index=False, float_format="%.6g")
                    metrics[split] = classification_metrics(y, table[[f"prob_{j}" for j in range(k)]].to_numpy())
                epochs = 6
                final = metrics["val"]["balanced_accuracy"]
                history = [{"epoch": e, "train_loss": 1.1 * np.exp(-0.35 * e) + rng.uniform(0, 0.03), "lr": 1e-3,
                            "seconds": 1.0, "val_balanced_accuracy": final - 0.25 * np.exp(-0.6 * e),
                            "val_auc": 0.9} for e in range(1, epochs + 1)]
                (root / run / "metrics.json").write_text(json.dumps({
                    "status": "ok", "best_epoch": epochs, "epochs_run": epochs, "metrics": metrics,
                    "history": history, "timing": {"train_images_per_s": costs[2]}}))
                (root / run / "model.json").write_text(json.dumps({"data": {"class_names": list(ds.classes)}}))
                lr, wd = HYPERPARAMETERS[model]
                for split, values in metrics.items():
                    for metric, value in values.items():
                        rows.append({
                            "dataset": ds.name, "dataset_spec": f"synthetic:{ds.name}?n=600", "model": model,
                            "backbone": backbone, "attention": attention, "placement": "all",
                            "is_baseline": baseline, "stage": "final", "seed": s, "split": split, "metric": metric,
                            "value": value, "params": costs[0], "flops": costs[1], "train_images_per_s": costs[2],
                            "infer_images_per_s": costs[3], "peak_memory_mb": costs[4], "hp_lr": lr,
                            "hp_weight_decay": wd, "run_dir": str(run),
                            "checkpoint": str(run / "model.safetensors"),
                            # the second dataset leaves the column empty: paths come from run_dir
                            "predictions": str(run / f"predictions_{split}.csv") if ds is datasets[0] else None,
                        })
    table = pd.DataFrame(rows)
    if fmt == "parquet":
        table.to_parquet(root / "results.parquet", index=False)
    else:
        table.to_csv(root / "results.csv", index=False)
    (root / "study.json").write_text(json.dumps(STUDY))
    return root


STUDY = {
    "name": "synthetic-attention",
    "datasets": [{"name": "derm", "spec": "synthetic:derm?n=600"}, {"name": "path", "spec": "synthetic:path?n=600"}],
    "seeds": 5,
    "tuning": {"trials": 16, "max_epochs": 6, "sampler": "tpe", "seed": 0,
               "pruner": {"type": "median", "startup_trials": 4, "warmup_epochs": 1},
               "search_space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
                                "weight_decay": {"low": 1e-5, "high": 0.1, "log": True},
                                "batch_size": {"type": "categorical", "choices": [64, 128]}}},
    "selection_metric": "balanced_accuracy",
    "train": {"epochs": 6, "optimizer": "adamw", "batch_size": 128, "augment": {"enabled": True}},
    "rope": 0.01,
    "alpha": 0.05,
}


def read_results(run_dir: Path) -> pd.DataFrame:
    """Return the results table as the tests' independent reference reads it."""
    path = run_dir / "results.parquet"
    return pd.read_parquet(path) if path.exists() else pd.read_csv(run_dir / "results.csv")


@dataclass(frozen=True)
class BuiltReport:
    """A synthetic run directory, the report built from it, and the texts of report.md and report.html."""

    run_dir: Path
    paths: ReportPaths
    markdown: str
    html: str
    results: pd.DataFrame
