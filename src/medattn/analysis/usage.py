"""Feature usage of every run of a study, at its final weights and at saved checkpoints (`train.save_epochs`).

For each run (results.csv, final stage), each epoch asked for and each feature, the test of
`medattn.analysis.citest` (H0: predicted class _||_ feature | true label) on the test split; p-values are
corrected across the features of one run and epoch (Holm by default, Benjamini-Hochberg on request, both
from statsmodels). The final weights' predictions come from the run's `predictions_test.csv`; a checkpoint's
are computed by loading `epoch_NNN.safetensors` and predicting the same images. Output: the tidy table
`RUN_DIR/features/usage.csv`, one row per run x epoch x feature.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from statsmodels.stats.multitest import multipletests

from medattn.analysis.citest import usage_test
from medattn.analysis.features import FeatureTable, build_feature_table, encode_feature
from medattn.data.dataset_spec import load_context, load_dataset
from medattn.data.imageset import ImageSet
from medattn.errors import DataError
from medattn.rundir import layout, writer
from medattn.rundir.reader import RUN_KEYS, RunData, load_run
from medattn.stats.resampling import CMI_BOOTSTRAP, PERMUTATIONS

FEATURES_DIR = layout.FEATURES
USAGE_FILE = layout.USAGE
FINAL = "final"
CORRECTIONS = {"holm": "holm", "bh": "fdr_bh"}


@dataclass(frozen=True)
class UsageOptions:
    """What to test: which epochs, which split, extra features, correction, permutations, bootstrap, seed."""

    epochs: Sequence[int | str] = (FINAL,)
    split: str = "test"
    features_file: str | None = None
    id_column: str | None = None
    correction: str = "holm"
    permutations: int = PERMUTATIONS
    bootstrap: int = CMI_BOOTSTRAP
    seed: int = 0
    prediction: str = "class"  # or "probability": P(positive class) in quartile bins


PREDICTIONS = ("class", "probability")


def study_runs(data: RunData) -> pd.DataFrame:
    """One row per finished final-stage run: dataset, dataset_spec, model, backbone, attention, seed, artifact_dir
    (resolved in the run directory)."""
    runs = data.runs()
    runs = runs[runs["artifact_dir"].notna() & runs["dataset_spec"].notna()]
    if runs.empty:
        raise DataError(f"{data.results_path}: needs columns dataset_spec and artifact_dir (written by "
                        f"`medattn study run` and `medattn train`); this table has neither")
    return runs.assign(artifact_dir=runs["artifact_dir"].map(str)).reset_index(drop=True)


def checkpoint_epochs(artifact_dir: Path) -> list[int]:
    """The epochs whose checkpoints a run saved."""
    return layout.saved_epochs(artifact_dir)


def check_epochs(runs: pd.DataFrame, epochs: Sequence[int | str]) -> None:
    """DataError when a run lacks a checkpoint for an asked epoch, saying how to save them."""
    wanted = [e for e in epochs if e != FINAL]
    for row in runs.itertuples():
        have = checkpoint_epochs(Path(row.artifact_dir))
        lacking = [e for e in wanted if e not in have]
        if lacking:
            saved = ", ".join(map(str, have)) if have else "none"
            raise DataError(f"{row.artifact_dir}: no checkpoint for epoch(s) {', '.join(map(str, lacking))} "
                            f"(saved: {saved}); set `train: save_epochs: [{', '.join(map(str, wanted))}]` in the "
                            f"study spec and run the study again, or ask only for saved epochs")


def predictions(row, epoch: int | str, data: ImageSet, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(image positions, class probabilities) of one run on a split, from its final predictions or a checkpoint."""
    artifact_dir = Path(row.artifact_dir)
    if epoch == FINAL:
        path = artifact_dir / layout.predictions_name(split)
        if not path.is_file():
            raise DataError(f"{path}: not found; the run wrote no predictions for split '{split}'")
        table = pd.read_csv(path)
        probs = table[[c for c in table.columns if c.startswith("prob_")]].to_numpy()
        return table["index"].to_numpy(np.int64), probs
    idx = np.flatnonzero(data.split == split)
    return idx, predict_checkpoint(artifact_dir / layout.epoch_checkpoint_name(epoch), data.images[idx])


def prediction_codes(probs: np.ndarray, how: str, positive: int) -> np.ndarray:
    """The prediction as tested: the predicted class, or P(positive class) binned in quartiles."""
    if how == "class":
        return probs.argmax(1)
    codes, _ = encode_feature(pd.Series(probs[:, positive]))
    return codes


def predict_checkpoint(path: Path, images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Class probabilities (N, K) of a saved checkpoint on uint8 images, normalised as in training."""
    from medattn.train.augment import to_float
    from medattn.train.checkpoint import load_run_model

    model, sidecar = load_run_model(path)
    mean, std = (torch.tensor(sidecar["data"][k]) for k in ("mean", "std"))
    size = sidecar["data"]["image_size"]
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            out.append(torch.softmax(model(to_float(images[start:start + batch_size], mean, std, size)), 1))
    return torch.cat(out).numpy() if out else np.zeros((0, sidecar["data"]["num_classes"]))


def test_features(prediction: np.ndarray, label: np.ndarray, features: pd.DataFrame, opts: UsageOptions,
                  seed: int) -> pd.DataFrame:
    """One row per feature: the usage test and the p-value corrected across the features (opts.correction)."""
    rows = []
    for k, name in enumerate(features.columns):
        codes, _ = encode_feature(features[name])
        result = usage_test(prediction, codes, label, permutations=opts.permutations, bootstrap=opts.bootstrap,
                            seed=seed + k)
        rows.append({"feature": name, **result.as_dict()})
    table = pd.DataFrame(rows)
    if not table.empty:
        table["p_adjusted"] = multipletests(table["pvalue"], method=CORRECTIONS[opts.correction])[1]
        table["correction"] = opts.correction
    return table


def usage_table(run_dir: Path, opts: UsageOptions = UsageOptions(),
                notify: Callable[[str], None] = lambda _: None) -> pd.DataFrame:
    """The tidy usage table of every run x epoch x feature of a study; also written to RUN_DIR/features/."""
    if opts.correction not in CORRECTIONS:
        raise DataError(f"--correction {opts.correction}: use one of {', '.join(CORRECTIONS)}")
    if opts.prediction not in PREDICTIONS:
        raise DataError(f"--prediction {opts.prediction}: use one of {', '.join(PREDICTIONS)}")
    run = load_run(Path(run_dir))
    runs = study_runs(run)
    check_epochs(runs, opts.epochs)
    ctx = load_context(run.study)
    frames = []
    for spec, group in runs.groupby("dataset_spec", sort=False):
        data = load_dataset(spec, ctx)
        features = build_feature_table(data, opts.features_file, id_column=opts.id_column)
        for name, why in features.skipped.items():
            notify(f"{group['dataset'].iloc[0]}: feature '{name}' skipped ({why})")
        write_abcd_values(run_dir, str(group["dataset"].iloc[0]), data, features)
        frames += [_run_rows(row, data, features, opts) for row in group.itertuples()]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    writer.write_table(run_dir / FEATURES_DIR / USAGE_FILE, table)
    return table


def write_abcd_values(run_dir: Path, dataset: str, data: ImageSet, features: FeatureTable) -> Path | None:
    """Write every image's ABCD features with its class and split (for the report's per-class distributions)."""
    columns = [c for c, src in features.source.items() if src == "abcd"]
    if not columns:
        return None
    table = features.table[columns].assign(label=[data.class_names[i] for i in data.labels.tolist()],
                                           split=data.split)
    return writer.write_table(run_dir / FEATURES_DIR / layout.abcd_name(dataset), table, digits=5)


def _run_rows(row, data: ImageSet, features: FeatureTable, opts: UsageOptions) -> pd.DataFrame:
    """The usage rows of one run at every asked epoch."""
    from medattn.analysis.probes import positive_class

    labels = data.labels.numpy()
    parts = []
    for epoch in opts.epochs:
        idx, probs = predictions(row, epoch, data, opts.split)
        predicted = prediction_codes(probs, opts.prediction, positive_class(data.class_names))
        tested = test_features(predicted, labels[idx], features.table.iloc[idx], opts, opts.seed + int(row.seed))
        tested.insert(0, "epoch", epoch)
        tested.insert(1, "prediction", opts.prediction)
        tested.insert(1, "source", tested["feature"].map(features.source))
        parts.append(tested)
    table = pd.concat(parts, ignore_index=True)
    for key in reversed(RUN_KEYS):
        table.insert(0, key, getattr(row, key))
    return table
