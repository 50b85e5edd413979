"""Feature usage of every run of a study, at its kept weights and at saved checkpoints (`train.save_epochs`).

For each run (results.csv, final stage), each epoch asked for and each feature, the test of
`medattn.analysis.citest` (H0: predicted class _||_ feature | true label) on the test split. The kept weights
are the best-validation epoch's (`best`, written `best (epoch N)`), not the last epoch's: their predictions come
from the run's `predictions_test.csv`; a checkpoint's are computed by loading `epoch_NNN.safetensors` and
predicting the same images. Features are encoded once per dataset (`features.encode_feature`, continuous bins
fitted on the training split), so every run of a dataset sees the same bins.

The family of the multiplicity correction (Holm by default, Benjamini-Hochberg on request, both from
statsmodels) is the testable features of one run and epoch: a feature constant within every label stratum is
untestable and a derived feature (`features.DERIVED`) is tested but kept out unless `include_derived`; both are
listed in the `excluded` column with p_adjusted empty. Permutation p-values get up to ceil(20 m / alpha)
permutations for a family of m features, so the smallest Holm-adjusted p is alpha / 20. Output: the tidy table
`RUN_DIR/features/usage.csv`, one row per run x epoch x feature.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from statsmodels.stats.multitest import multipletests

from medattn.analysis.citest import usage_test
from medattn.analysis.features import (
    FeatureTable,
    build_feature_table,
    derived_features,
    encode_feature,
    is_ordered,
)
from medattn.data.dataset_spec import load_context, load_dataset
from medattn.data.imageset import ImageSet
from medattn.errors import DataError
from medattn.rundir import layout, writer
from medattn.rundir.reader import RUN_KEYS, RunData, load_run
from medattn.stats.resampling import PERMUTATIONS

FEATURES_DIR = layout.FEATURES
USAGE_FILE = layout.USAGE
BEST = "best"
FINAL = "final"  # accepted as an alias of BEST (the kept, best-validation weights)
CORRECTIONS = {"holm": "holm", "bh": "fdr_bh"}


@dataclass(frozen=True)
class UsageOptions:
    """What to test: which epochs, which split, extra features, correction, permutations, family level, seed."""

    epochs: Sequence[int | str] = (BEST,)
    split: str = "test"
    features_file: str | None = None
    id_column: str | None = None
    correction: str = "holm"
    permutations: int = PERMUTATIONS  # first batch (null moments); the p-value may draw up to 20 m / alpha
    alpha: float = 0.05  # level the family is read at (sets the permutation budget)
    include_derived: bool = False
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
    wanted = [e for e in epochs if e not in (BEST, FINAL)]
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
    if epoch in (BEST, FINAL):
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
    bins = pd.qcut(pd.Series(probs[:, positive]), 4, duplicates="drop")
    return bins.cat.codes.to_numpy(np.int64)


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


def family_permutations(opts: UsageOptions, m: int) -> int:
    """Most permutations of one test for a family of m features read at opts.alpha: ceil(20 m / alpha)."""
    return max(int(opts.permutations), math.ceil(20 * max(m, 1) / opts.alpha))


def test_features(prediction: np.ndarray, label: np.ndarray, features: pd.DataFrame, opts: UsageOptions,
                  seed: int, *, encoded: bool = False, ordered: dict[str, bool] | None = None,
                  derived: tuple[str, ...] = (), positive: int | None = None,
                  probability: np.ndarray | None = None) -> pd.DataFrame:
    """One row per feature: the usage test, whether it is in the correction's family, and its corrected p.

    `features` holds raw columns (encoded here, bins fitted on these rows) or, with `encoded`, integer codes.
    """
    codes = features if encoded else pd.DataFrame({c: encode_feature(features[c])[0] for c in features.columns})
    ordered = ordered if ordered is not None else {c: is_ordered(features[c]) for c in features.columns}
    excluded = {}
    for name in codes.columns:
        if name in derived and not opts.include_derived:
            excluded[name] = "derived"
        elif _untestable(prediction, codes[name].to_numpy(), label):
            excluded[name] = "untestable"
    cap = family_permutations(opts, len(codes.columns) - len(excluded))
    rows = []
    for k, name in enumerate(codes.columns):
        result = usage_test(prediction, codes[name].to_numpy(), label, permutations=opts.permutations,
                            max_permutations=cap, seed=seed + k, name=str(name), positive=positive,
                            ordered=ordered.get(name, True), probability=probability)
        rows.append({"feature": name, **result.as_dict(), "excluded": excluded.get(name, "")})
    table = pd.DataFrame(rows)
    if not table.empty:
        family = table["excluded"] == ""
        table["p_adjusted"] = np.nan
        if family.any():
            table.loc[family, "p_adjusted"] = multipletests(table.loc[family, "pvalue"],
                                                            method=CORRECTIONS[opts.correction])[1]
        table["family_size"] = int(family.sum())
        table["correction"] = opts.correction
    return table


def _untestable(prediction: np.ndarray, codes: np.ndarray, label: np.ndarray) -> bool:
    """True when no label stratum has two prediction levels and two feature levels (df = 0)."""
    ok = codes >= 0
    pairs = pd.DataFrame({"z": label[ok], "x": prediction[ok], "y": codes[ok]})
    varied = pairs.groupby("z").agg(x=("x", "nunique"), y=("y", "nunique"))
    return not ((varied["x"] > 1) & (varied["y"] > 1)).any()


def encode_table(features: FeatureTable, fit: np.ndarray) -> tuple[pd.DataFrame, dict[str, bool]]:
    """Integer codes of every feature (continuous bins fitted on `fit` rows) and whether each is ordered."""
    codes = pd.DataFrame({c: encode_feature(features.table[c], fit=fit)[0] for c in features.table.columns})
    return codes, {c: is_ordered(features.table[c]) for c in features.table.columns}


def usage_table(run_dir: Path, opts: UsageOptions = UsageOptions(),
                notify: Callable[[str], None] = lambda _: None) -> pd.DataFrame:
    """The tidy usage table of every run x epoch x feature of a study; also written to RUN_DIR/features/."""
    if opts.correction not in CORRECTIONS:
        raise DataError(f"--correction {opts.correction}: use one of {', '.join(CORRECTIONS)}")
    if opts.prediction not in PREDICTIONS:
        raise DataError(f"--prediction {opts.prediction}: use one of {', '.join(PREDICTIONS)}")
    if not 0 < opts.alpha < 1:
        raise DataError(f"--alpha {opts.alpha}: give a level between 0 and 1, e.g. 0.05")
    run = load_run(Path(run_dir))
    runs = study_runs(run)
    check_epochs(runs, opts.epochs)
    ctx = load_context(run.study)
    best = best_epochs(run.results)
    frames = []
    for spec, group in runs.groupby("dataset_spec", sort=False):
        data = load_dataset(spec, ctx)
        features = build_feature_table(data, opts.features_file, id_column=opts.id_column)
        for name, why in features.skipped.items():
            notify(f"{group['dataset'].iloc[0]}: feature '{name}' skipped ({why})")
        write_abcd_values(run_dir, str(group["dataset"].iloc[0]), data, features)
        fit = data.split == "train"
        codes, ordered = encode_table(features, fit if fit.any() else np.ones(len(fit), bool))
        frames += [_run_rows(row, data, features, codes, ordered, opts,
                             kept_epoch(Path(row.artifact_dir), best.get((row.dataset, row.model, int(row.seed)))))
                   for row in group.itertuples()]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    writer.write_table(run_dir / FEATURES_DIR / USAGE_FILE, table)
    return table


def write_abcd_values(run_dir: Path, dataset: str, data: ImageSet, features: FeatureTable) -> Path | None:
    """Write every image's ABCD features with its class, split and whether its mask touches the image edge."""
    from medattn.analysis.abcd import touches_edge

    columns = [c for c, src in features.source.items() if src == "abcd"]
    if not columns:
        return None
    table = features.table[columns].assign(label=[data.class_names[i] for i in data.labels.tolist()],
                                           split=data.split,
                                           touches_edge=touches_edge(data.masks) if data.masks is not None else False)
    return writer.write_table(run_dir / FEATURES_DIR / layout.abcd_name(dataset), table, digits=5)


def best_epochs(results: pd.DataFrame) -> dict[tuple, int]:
    """The kept (best-validation) epoch of each (dataset, model, seed), from results.csv's best_epoch column."""
    if "best_epoch" not in results.columns:
        return {}
    rows = results.dropna(subset=["best_epoch"]).drop_duplicates(["dataset", "model", "seed"])
    return {(d, m, int(s)): int(e) for d, m, s, e in zip(rows["dataset"], rows["model"], rows["seed"],
                                                         rows["best_epoch"], strict=True)}


def kept_epoch(artifact_dir: Path, recorded: int | None = None) -> int | None:
    """The epoch whose weights a run kept: its model.json's `epoch` (the weights' own record), else `recorded`."""
    import json

    path = Path(artifact_dir) / layout.SIDECAR
    try:
        epoch = json.loads(path.read_text()).get("epoch") if path.is_file() else None
    except (OSError, ValueError):
        epoch = None
    return int(epoch) if isinstance(epoch, int) and epoch > 0 else recorded


def epoch_label(epoch: int | str, best_epoch: int | None = None) -> str:
    """How an epoch is named in tables: 'best (epoch 5)' for the kept weights, else the epoch number."""
    if epoch in (BEST, FINAL):
        return f"{BEST} (epoch {best_epoch})" if best_epoch is not None else BEST
    return str(epoch)


def _run_rows(row, data: ImageSet, features: FeatureTable, codes: pd.DataFrame, ordered: dict[str, bool],
              opts: UsageOptions, best_epoch: int | None) -> pd.DataFrame:
    """The usage rows of one run at every asked epoch."""
    from medattn.analysis.probes import positive_class

    labels = data.labels.numpy()
    positive = positive_class(data.class_names)
    derived = derived_features(data)
    parts = []
    for epoch in opts.epochs:
        idx, probs = predictions(row, epoch, data, opts.split)
        predicted = prediction_codes(probs, opts.prediction, positive)
        tested = test_features(predicted, labels[idx], codes.iloc[idx].reset_index(drop=True), opts,
                               opts.seed + int(row.seed), encoded=True, ordered=ordered, derived=derived,
                               positive=positive if opts.prediction == "class" else None,
                               probability=probs[:, positive])
        tested.insert(0, "epoch", BEST if epoch in (BEST, FINAL) else epoch)
        tested.insert(1, "epoch_label", epoch_label(epoch, best_epoch))
        tested.insert(2, "prediction", opts.prediction)
        tested.insert(2, "split", opts.split)
        tested.insert(2, "source", tested["feature"].map(features.source))
        tested["single_label_group"] = tested["label_groups"] == 1
        parts.append(tested)
    table = pd.concat(parts, ignore_index=True)
    for key in reversed(RUN_KEYS):
        table.insert(0, key, getattr(row, key))
    return table
