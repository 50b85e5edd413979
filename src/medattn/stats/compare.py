"""The study's comparison table: every attention variant vs its plain backbone and every CNN vs the best
baseline, per dataset and metric, paired by seed.

Per comparison (difference = model - reference over the seeds both have): mean difference with a t
confidence interval, paired t test, Wilcoxon signed-rank test, Holm-adjusted t p-value, Cohen's d_z
(and Hedges' g_z), Bayesian P(worse) / P(equivalent) / P(better) with a ROPE, the minimum detectable
difference, and a verdict (rules in :mod:`medattn.stats.verdict`).

Choices, documented here because they change numbers:

* The best baseline of a dataset is the ``is_baseline`` model with the best mean ``primary_metric`` on
  the compared split; it is chosen once per dataset and used for every metric. Choosing it on the
  same split favours the baseline, so claims of beating it are conservative. Only non-baseline models
  are compared with it (a baseline-vs-baseline contest is not the study's question).
* Holm's correction runs over all comparisons of the study that share the ``holm_by`` columns
  (default: the metric, i.e. every dataset x comparison of balanced accuracy is one family, and each
  secondary metric is its own family). ``holm_by=()`` corrects over the whole table.
* ``p_worse`` / ``p_better`` follow the metric's direction (for ECE lower is better), so
  ``p_better`` is always the probability of a practically relevant improvement.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from medattn.errors import DataError
from medattn.stats.bayes import rope_probabilities
from medattn.stats.correction import holm
from medattn.stats.paired import paired_difference
from medattn.stats.power import minimum_detectable_difference
from medattn.stats.tidy import (
    KNOWN_METRICS,
    higher_is_better,
    model_roles,
    plain_references,
    seed_table,
    validate_results,
)
from medattn.stats.verdict import decide

ATTENTION_VS_PLAIN = "attention_vs_plain"
VS_BEST_BASELINE = "vs_best_baseline"
COMPARISON_COLUMNS: tuple[str, ...] = (
    "dataset",
    "split",
    "model",
    "reference",
    "kind",
    "metric",
    "n",
    "mean_model",
    "mean_reference",
    "mean_diff",
    "sd_diff",
    "ci_low",
    "ci_high",
    "t",
    "p_t",
    "wilcoxon_stat",
    "p_wilcoxon",
    "p_holm",
    "effect_size",
    "effect_size_hedges",
    "p_worse",
    "p_equiv",
    "p_better",
    "mdd",
    "rope",
    "verdict",
)


def best_baselines(
    results: pd.DataFrame, *, split: str = "test", metric: str = "balanced_accuracy"
) -> pd.Series:
    """Return, per dataset that has baselines, the baseline with the best mean ``metric`` on ``split``."""
    sub = results[
        (results["split"] == split) & (results["metric"] == metric) & results["is_baseline"].astype(bool)
    ]
    if sub.empty:
        return pd.Series(dtype=object, name="best_baseline")
    means = sub.groupby(["dataset", "model"])["value"].mean()
    pick = (
        means.groupby(level="dataset").idxmax
        if higher_is_better(metric)
        else means.groupby(level="dataset").idxmin
    )
    return pick().map(lambda key: key[1]).rename("best_baseline")


def comparison_pairs(
    results: pd.DataFrame, *, split: str = "test", primary_metric: str = "balanced_accuracy"
) -> pd.DataFrame:
    """Return the comparisons to run: one row per (dataset, model, reference, kind)."""
    results = validate_results(results)
    roles = model_roles(results)
    plain_of = plain_references(roles)
    is_baseline = roles["is_baseline"].to_dict()
    present = results[results["split"] == split].groupby("dataset")["model"].unique()
    baselines = best_baselines(results, split=split, metric=primary_metric)
    if baselines.empty and results["is_baseline"].astype(bool).any():
        warnings.warn(
            f"no {primary_metric!r} results for baselines on split {split!r}: cannot pick the best baseline, "
            "vs-best-baseline comparisons skipped (set primary_metric to a metric the table has)",
            stacklevel=2,
        )
    orphans = sorted(set(roles.index[(roles["attention"] != "none") & ~roles["is_baseline"]]) - set(plain_of))
    if orphans:
        warnings.warn(
            f"attention variant(s) {orphans} have no plain model (same backbone, attention 'none') in the "
            "results; their attention-vs-plain comparisons are skipped",
            stacklevel=2,
        )
    rows: list[tuple[str, str, str, str]] = []
    for dataset, models in present.items():
        models = sorted(models)
        available = set(models)
        for model in models:
            plain = plain_of.get(model)
            if plain in available:
                rows.append((dataset, model, plain, ATTENTION_VS_PLAIN))
            elif plain is not None:
                warnings.warn(
                    f"dataset {dataset!r}: {model!r} has no results for its plain backbone {plain!r} "
                    f"on split {split!r}; attention-vs-plain comparison skipped",
                    stacklevel=2,
                )
        best = baselines.get(dataset)
        if best is not None:
            rows += [(dataset, m, best, VS_BEST_BASELINE) for m in models if not is_baseline[m]]
    return pd.DataFrame(rows, columns=["dataset", "model", "reference", "kind"])


def _resolve_metrics(results: pd.DataFrame, metrics: Sequence[str] | None) -> list[str]:
    """Return the metrics to compare: the requested ones (all must exist) or the known ones present."""
    present = set(results["metric"].unique())
    if metrics is None:
        return [m for m in KNOWN_METRICS if m in present]
    missing = [m for m in metrics if m not in present]
    if missing:
        raise DataError(f"metrics={missing} not in the results table; metrics present: {sorted(present)}")
    return list(metrics)


def _rope_for(rope: float | Mapping[str, float], metric: str) -> float:
    """Return the ROPE half-width for ``metric`` from a number or a {metric: half-width} mapping."""
    if not isinstance(rope, Mapping):
        return float(rope)
    if metric not in rope:
        raise DataError(f"rope={dict(rope)} has no entry for metric {metric!r}; give one per compared metric")
    return float(rope[metric])


def compare_models(
    results: pd.DataFrame,
    *,
    split: str = "test",
    metrics: Sequence[str] | None = None,
    primary_metric: str = "balanced_accuracy",
    rope: float | Mapping[str, float] = 0.01,
    rho: float = 0.0,
    alpha: float = 0.05,
    power: float = 0.8,
    confidence: float = 0.95,
    equiv_prob: float = 0.95,
    holm_by: Sequence[str] = ("metric",),
) -> pd.DataFrame:
    """Return the tidy comparison table (columns :data:`COMPARISON_COLUMNS`) for one split of a study."""
    results = validate_results(results)
    metrics = _resolve_metrics(results, metrics)
    if not (results["split"] == split).any():
        raise DataError(
            f"split {split!r} not in the results table; splits present: {sorted(results['split'].unique())}"
        )
    pairs = comparison_pairs(results, split=split, primary_metric=primary_metric)
    bad = [c for c in holm_by if c not in COMPARISON_COLUMNS]
    if bad:
        raise DataError(
            f"holm_by={list(holm_by)} names unknown column(s) {bad}; use columns of the comparison table"
        )
    if pairs.empty:
        return pd.DataFrame(columns=list(COMPARISON_COLUMNS))
    table = seed_table(results, split=split, metrics=metrics)
    pairs_by_dataset = {d: g for d, g in pairs.groupby("dataset", sort=False)}
    rows: list[dict] = []
    for (dataset, metric), block in table.groupby(level=["dataset", "metric"], sort=False):
        todo = pairs_by_dataset.get(dataset)
        if todo is None:
            continue
        half = _rope_for(rope, metric)
        hib = higher_is_better(metric)
        for model, reference, kind in todo[["model", "reference", "kind"]].itertuples(index=False):
            if model not in block.columns or reference not in block.columns:
                continue
            a = block[model].to_numpy(float)
            b = block[reference].to_numpy(float)
            paired = ~(np.isnan(a) | np.isnan(b))
            if not paired.any():
                continue
            res = paired_difference(a, b, confidence=confidence)
            low, equiv, high = rope_probabilities(a[paired] - b[paired], rope=half, rho=rho)
            rows.append(
                {
                    "dataset": dataset,
                    "split": split,
                    "model": model,
                    "reference": reference,
                    "kind": kind,
                    "metric": metric,
                    "n": res.n,
                    "mean_model": float(a[paired].mean()),
                    "mean_reference": float(b[paired].mean()),
                    "mean_diff": res.mean_diff,
                    "sd_diff": res.sd_diff,
                    "ci_low": res.ci_low,
                    "ci_high": res.ci_high,
                    "t": res.t,
                    "p_t": res.p_t,
                    "wilcoxon_stat": res.wilcoxon_stat,
                    "p_wilcoxon": res.p_wilcoxon,
                    "effect_size": res.effect_size,
                    "effect_size_hedges": res.effect_size_hedges,
                    "p_worse": low if hib else high,
                    "p_equiv": equiv,
                    "p_better": high if hib else low,
                    "mdd": minimum_detectable_difference(res.sd_diff, res.n, alpha=alpha, power=power),
                    "rope": half,
                }
            )
    out = pd.DataFrame(rows)
    if out.empty:
        return pd.DataFrame(columns=list(COMPARISON_COLUMNS))
    if holm_by:
        out["p_holm"] = out.groupby(list(holm_by), sort=False)["p_t"].transform(lambda p: holm(p.to_numpy()))
    else:
        out["p_holm"] = holm(out["p_t"].to_numpy())
    improvement = np.where(out["metric"].map(higher_is_better), out["mean_diff"], -out["mean_diff"])
    out["verdict"] = [
        decide(p, imp, eq, alpha=alpha, equiv_prob=equiv_prob)
        for p, imp, eq in zip(out["p_holm"], improvement, out["p_equiv"], strict=True)
    ]
    return out[list(COMPARISON_COLUMNS)].reset_index(drop=True)
