"""One fabricator of run directories for tests: the files `medattn study run` and `medattn explain` leave, small.

The run directory is the contract between the study and every later stage (DESIGN.md, "The run directory is
the contract between stages"): a tidy results table, one artifact folder per run, an explanation store. Every
file and folder name comes from :mod:`medattn.rundir.layout`; the contents are written here with numpy, pandas
and json (not with medattn's writer), so a test that reads them checks the reader, not its echo.

Building blocks: :func:`run_folder`, :func:`result_rows`, :func:`write_results`, :func:`read_results`,
:func:`write_sidecar`.
Whole run directories, one per kind of reader:

- :func:`planted_run`: exact prediction files with planted effects (stats, report): ``resnet18+cbam`` is
  +3 pp balanced accuracy on test, ``resnet18+se`` has no effect, the baseline ``vit`` is -2 pp;
- :func:`trained_run`: models really trained on a small derm-synth set (feature usage, shortcut probes);
- :func:`checkpoint_run`: seeded, untrained checkpoints (explanations read only the weights);
- :func:`explained_run`: an explanation store with random but valid maps (survey).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medattn.rundir import layout

# The three models of the explanation and survey tests: name -> (backbone, attention).
ATTENTION_TRIO = {"resnet18": ("resnet18", "none"), "resnet18+se": ("resnet18", "se"),
                  "resnet18+cbam": ("resnet18", "cbam")}


# -- building blocks -----------------------------------------------------------------------------------------


def run_folder(dataset: str, model: str, seed: int, trial: int = 0) -> Path:
    """Return one run's artifact folder, relative to the run directory (the contract's layout)."""
    return Path(layout.run_folder(dataset, model, seed, trial))


def result_rows(identity: dict, metrics: dict[str, dict[str, float]], **columns) -> list[dict]:
    """Return the tidy rows of one run: ``identity``, then split, metric and value, then ``columns``."""
    return [{**identity, "split": split, "metric": metric, "value": value, **columns}
            for split, values in metrics.items() for metric, value in values.items()]


def write_results(root: Path, rows: list[dict], fmt: str = "csv") -> Path:
    """Write the results table (results.csv or results.parquet) under ``root``; return its path."""
    table = pd.DataFrame(rows)
    if fmt == "parquet":
        path = root / layout.RESULTS_PARQUET
        table.to_parquet(path, index=False)
    else:
        path = root / layout.RESULTS_CSV
        table.to_csv(path, index=False)
    return path


def read_results(root: Path) -> pd.DataFrame:
    """Return the results table with pandas alone (results.parquet if present, else results.csv)."""
    path = root / layout.RESULTS_PARQUET
    return pd.read_parquet(path) if path.exists() else pd.read_csv(root / layout.RESULTS_CSV)


def write_sidecar(run: Path, class_names: list[str]) -> Path:
    """Write a run's model.json with just the class names (what the report and the survey read from it)."""
    run.mkdir(parents=True, exist_ok=True)
    path = run / layout.SIDECAR
    path.write_text(json.dumps({"data": {"class_names": list(class_names)}}))
    return path


# -- planted effects (stats, report) -------------------------------------------------------------------------

PLANTED_MODELS = {  # name: (backbone, attention, is_baseline, planted effect on test, costs)
    "resnet18": ("resnet18", "none", False, 0.0, (11.2e6, 1.82e9, 2400, 9100, 410)),
    "resnet18+cbam": ("resnet18", "cbam", False, 0.03, (11.6e6, 1.84e9, 1900, 7300, 455)),
    "resnet18+se": ("resnet18", "se", False, 0.0, (11.3e6, 1.83e9, 2100, 8400, 430)),
    "vit": ("vit_tiny_patch16_224", "none", True, -0.02, (5.7e6, 1.26e9, 2900, 9900, 380)),
}
CLASS_OFFSETS = {2: (0.04, -0.04), 3: (0.06, -0.09, 0.03)}  # per-class recall around the target; mean zero
HYPERPARAMETERS = {"resnet18": (3.1e-3, 0.012), "resnet18+cbam": (1.7e-3, 0.021), "resnet18+se": (2.2e-3, 0.04),
                   "vit": (4.0e-4, 0.05)}
PLANTED_EPOCHS = 6


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

PLANTED_STUDY = {
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


def planted_predictions(labels: np.ndarray, target: float, difficulty: np.ndarray, k: int,
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


def _split_target(ds: DatasetPlan, model: str, split: str, target: float, effect: float) -> float:
    """The target balanced accuracy of a run on one split: val 1 pp below test, OOD splits shifted."""
    if split == "test":
        return target
    if split == "val":
        return target - 0.01
    return target + ds.ood_shift - effect + ds.ood_effects.get(model, 0.0)


def _write_history(run: Path, metrics: dict, train_images_per_s: float, rng: np.random.Generator) -> None:
    """Write a run's metrics.json: a decaying loss, a validation curve rising to its final value."""
    final = metrics["val"]["balanced_accuracy"]
    history = [{"epoch": e, "train_loss": 1.1 * np.exp(-0.35 * e) + rng.uniform(0, 0.03), "lr": 1e-3,
                "seconds": 1.0, "val_balanced_accuracy": final - 0.25 * np.exp(-0.6 * e),
                "val_auc": 0.9} for e in range(1, PLANTED_EPOCHS + 1)]
    (run / layout.METRICS_JSON).write_text(json.dumps({
        "status": "ok", "best_epoch": PLANTED_EPOCHS, "epochs_run": PLANTED_EPOCHS, "metrics": metrics,
        "history": history, "timing": {"train_images_per_s": train_images_per_s}}))


def planted_run(root: Path, datasets: tuple[DatasetPlan, ...] = (DERM, PATH), seeds: int = 5,
                fmt: str = "parquet", seed: int = 0) -> Path:
    """Write a RUN_DIR with planted effects (results table, study.json, per-run artifacts) under ``root``.

    Every run gets exact prediction files: per class, the number of correct samples is fixed by the run's target
    balanced accuracy, so the tidy values (computed from the predictions with medattn's own metrics) and the
    predictions agree. Rows name their folder in ``run_dir`` (the hand-written alternative to the engine's
    ``artifact_dir``); the first dataset's rows also name their prediction files, the others leave it to the
    folder.
    """
    from medattn.train.metrics import classification_metrics

    rng = np.random.default_rng(seed)
    rows = []
    for ds in datasets:
        k = len(ds.classes)
        labels = {split: np.repeat(np.arange(k), n) for split, n in ds.per_class.items()}
        difficulty = {split: rng.uniform(0, 1, len(y)) for split, y in labels.items()}
        seed_effect = rng.normal(0, 0.01, seeds)
        for model, (backbone, attention, baseline, effect, costs) in PLANTED_MODELS.items():
            for s in range(seeds):
                run = run_folder(ds.name, model, s)
                (root / run).mkdir(parents=True, exist_ok=True)
                target = ds.base + seed_effect[s] + effect + rng.normal(0, 0.004)
                metrics = {}
                for split, y in labels.items():
                    table = planted_predictions(y, _split_target(ds, model, split, target, effect),
                                                difficulty[split], k, rng)
                    table.to_csv(root / run / layout.predictions_name(split), index=False, float_format="%.6g")
                    metrics[split] = classification_metrics(y, table[[f"prob_{j}" for j in range(k)]].to_numpy())
                _write_history(root / run, metrics, costs[2], rng)
                write_sidecar(root / run, list(ds.classes))
                lr, wd = HYPERPARAMETERS[model]
                identity = {"dataset": ds.name, "dataset_spec": f"synthetic:{ds.name}?n=600", "model": model,
                            "backbone": backbone, "attention": attention, "placement": "all",
                            "is_baseline": baseline, "stage": "final", "seed": s}
                run_rows = result_rows(identity, metrics, params=costs[0], flops=costs[1],
                                       train_images_per_s=costs[2], infer_images_per_s=costs[3],
                                       peak_memory_mb=costs[4], hp_lr=lr, hp_weight_decay=wd, run_dir=str(run),
                                       checkpoint=str(run / layout.CHECKPOINT))
                for row in run_rows:
                    first = ds is datasets[0]
                    row["predictions"] = str(run / layout.predictions_name(row["split"])) if first else None
                rows += run_rows
    write_results(root, rows, fmt)
    (root / layout.STUDY_JSON).write_text(json.dumps(PLANTED_STUDY))
    return root


# -- trained models (feature usage, probes) ------------------------------------------------------------------

DERM_SYNTH = "synthetic:derm-synth?n={n}&size=32&seed=0&shortcut_corr={corr}&artefacts=patch"


def trained_run(root: Path, corr: float = 0.95, n: int = 300, models=(("resnet18", "none"),), seeds=(0,),
                epochs: int = 1, save_epochs=(1,)) -> Path:
    """Train each (backbone, attention) x seed on a small derm-synth set (dataset 'synth') with medattn's
    training loop, which writes each run's artifacts; write results.csv as a study does; return ``root``."""
    import torch

    from medattn.data.dataset_spec import load_dataset

    spec = DERM_SYNTH.format(n=n, corr=corr)
    data = load_dataset(spec)
    rows = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: OpenMP threads only wait on each other
    try:
        for backbone, attention in models:
            for seed in seeds:
                rows += _trained(root, data, spec, backbone, attention, seed, epochs, save_epochs)
    finally:
        torch.set_num_threads(threads)
    write_results(root, rows)
    return root


def _trained(root: Path, data, spec: str, backbone: str, attention: str, seed: int, epochs: int,
             save_epochs) -> list[dict]:
    """Train one model with one seed into its run folder (fp32, no augmentation); return its tidy rows."""
    from medattn.train.config import ModelConfig, TrainConfig
    from medattn.train.loop import train_run

    model = backbone if attention == "none" else f"{backbone}+{attention}"
    run = run_folder("synth", model, seed)
    cfg = TrainConfig(epochs=epochs, batch_size=64, lr=3e-3, warmup_epochs=0, save_epochs=list(save_epochs),
                      progress=False, device="cpu", augment={"enabled": False},
                      precision="fp32")  # the thresholds of these tests were measured in fp32
    result = train_run(data, ModelConfig(backbone=backbone, attention=attention, small_stem=False), cfg, seed,
                       root / run)
    identity = {"study": "t", "dataset": "synth", "dataset_spec": spec, "model": model, "backbone": backbone,
                "attention": attention, "is_baseline": attention == "none", "stage": "final", "seed": seed,
                "trial": 0, "status": "ok"}
    return result_rows(identity, result.metrics, artifact_dir=run.as_posix())


# -- untrained checkpoints (explanations) --------------------------------------------------------------------

EXPLAIN_SPEC = "synthetic:derm-synth?n=96&size=32&shortcut_corr=0.9&artefacts=patch"


def checkpoint_run(root: Path, models: dict[str, tuple[str, str]] = ATTENTION_TRIO, seeds: tuple[int, ...] = (0, 1),
                   data_spec: str = EXPLAIN_SPEC, dataset: str = "derm") -> Path:
    """Write one checkpoint (seeded random weights, norm scales in [0.5, 1.5]) per model x seed and results.csv
    as `medattn study` does; explanations only read these files, so no training is needed to test them."""
    import torch

    from medattn.data.dataset_spec import LoadContext, load_dataset
    from medattn.train.augment import channel_stats
    from medattn.train.checkpoint import save_checkpoint
    from medattn.train.config import ModelConfig
    from medattn.train.loop import make_model

    data = load_dataset(data_spec, LoadContext.from_env())
    mean, std = channel_stats(data.images[data.indices("train")])
    rows = []
    for name, (backbone, attention) in models.items():
        for seed in seeds:
            run = run_folder(dataset, name, seed)
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
            save_checkpoint(model.state_dict(), root / run / layout.CHECKPOINT, sidecar)
            identity = {"dataset": dataset, "dataset_spec": data_spec, "model": name, "backbone": backbone,
                        "attention": attention, "is_baseline": False, "stage": "final", "seed": seed}
            metrics = {"test": {"balanced_accuracy": 0.5 + 0.01 * seed, "auc": 0.5}}
            rows += result_rows(identity, metrics, artifact_dir=run.as_posix())
    write_results(root, rows)
    return root


# -- an explanation store (survey) ---------------------------------------------------------------------------

SURVEY_CLASSES = ["normal", "pneumonia"]


def explained_run(root: Path, *, n_images: int = 12, size: int = 28, seeds: tuple[int, ...] = (0, 1),
                  models: dict[str, tuple[str, str]] = ATTENTION_TRIO, dataset: str = "pneu", seed: int = 0) -> Path:
    """Write RUN_DIR/explanations (sample.npz, runs.csv) and one maps.npz + index.csv per run, in the store's
    fixed format; maps are random in [0, 1] and plain models have no attention maps. Return RUN_DIR."""
    rng = np.random.default_rng(seed)
    folder = root / layout.EXPLANATIONS
    folder.mkdir(parents=True, exist_ok=True)
    ids = np.array([f"img{i:03d}" for i in range(n_images)])
    images = rng.integers(0, 256, (n_images, 1, size, size), dtype=np.uint8)
    labels = rng.integers(0, 2, n_images).astype(np.int64)
    np.savez(folder / layout.SAMPLE, ids=ids, images=images, labels=labels,
             masks=(rng.random((n_images, size, size)) > 0.7).astype(np.uint8), split=np.str_("test"),
             seed=np.int64(seed))
    runs = []
    for model, (backbone, attention) in models.items():
        methods = ["gradcam", "gradcampp"] + ([] if attention == "none" else ["attention"])
        for s in seeds:
            run = run_folder(dataset, model, s)
            write_sidecar(root / run, SURVEY_CLASSES)
            maps_path = run / layout.EXPLANATIONS / layout.MAPS
            (root / maps_path).parent.mkdir(parents=True, exist_ok=True)
            rows = [(image_id, method, target) for image_id in ids for method in methods
                    for target in ("predicted", "true")]
            np.savez(root / maps_path, maps=rng.random((len(rows), size, size)).astype(np.float16))
            index = pd.DataFrame(rows, columns=["image_id", "method", "target"])
            index.insert(0, "row", range(len(rows)))
            index.insert(3, "layer", np.where(index["method"] == "attention", "", "layer4"))
            index["target_class"], index["predicted"], index["label"], index["probability"] = 1, 1, 0, 0.8
            index.to_csv(root / run / layout.EXPLANATIONS / layout.MAPS_INDEX, index=False)
            runs.append({"dataset": dataset, "model": model, "backbone": backbone, "attention": attention, "seed": s,
                         "run_dir": run.as_posix(), "maps": maps_path.as_posix()})
    pd.DataFrame(runs).to_csv(folder / layout.EXPLAINED_RUNS, index=False)
    return root
