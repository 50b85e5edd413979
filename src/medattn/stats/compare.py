"""The study's comparison table: every attention variant vs its plain backbone and every CNN vs the best
baseline, per dataset and metric, paired by seed.

Per comparison (difference = model - reference over the seeds both have): mean difference with a t
confidence interval, paired t test, Wilcoxon signed-rank test, Holm-adjusted t p-value, Cohen's d_z
(and Hedges' g_z), Bayesian P(worse) / P(equivalent) / P(better) with a ROPE, the minimum detectable
difference, and a verdict (rules in :mod:`medattn.stats.verdict`).

Choices, documented here because they change numbers:

* The best baseline of a dataset is the ``is_baseline`` model with the best mean ``primary_metric`` on
  the validation split (``selection_split``, default ``val``); it is chosen once per dataset and used
  for every metric and every compared split. Choosing it on the compared (test) split lets the test
  noise that decides the comparison also pick the reference. Simulated null studies (one CNN, three
  equal baselines, 5 seeds, 4000 studies; measured for issue 8): chosen on test, "significant loss" in
  5.4 % of studies (nominal 2.5 %); chosen on validation, 2.5 % when validation and test noise are
  independent (tests/stats/test_stats_verdicts.py), but 4.3 % when half of the run-to-run variance shows
  on both splits and 5.4 % when all of it does: run quality that lifts a baseline on both splits still
  favours it, so a loss against the best baseline remains somewhat liberal. A dataset without
  validation results for its baselines falls back to the compared split, with a warning.
  Only non-baseline models are compared with it (a baseline-vs-baseline contest is not the study's question).
* Holm's correction runs over all comparisons of the study that share the ``holm_by`` columns
  (default: the metric, i.e. every dataset x comparison of balanced accuracy is one family, and each
  secondary metric is its own family). ``holm_by=()`` corrects over the whole table.
* The minimum detectable difference is computed at alpha / m, m = the size of the comparison's Holm
  family (Holm's first step: a difference detectable there is detected whatever the other p-values),
  from the observed sd of the paired differences; NaN when that sd is 0.
* ``p_worse`` / ``p_better`` follow the metric's direction (for ECE lower is better), so
  ``p_better`` is always the probability of a practically relevant improvement.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from medattn.errors import DataError
from medattn.rundir.metrics import METRIC_NAMES, higher_is_better
from medattn.rundir.table import (  # noqa: F401  (the kinds are part of this module's API)
    ATTENTION_VS_PLAIN,
    VS_BEST_BASELINE,
    model_roles,
    plain_references,
    validate_results,
)
from medattn.stats.bayes import rope_probabilities_many
from medattn.stats.correction import holm_grouped
from medattn.stats.paired import cohens_dz, hedges_correction, paired_t, signed_rank_many, wilcoxon_signed_rank
from medattn.stats.power import minimum_detectable_difference
from medattn.stats.tidy import seed_table
from medattn.stats.verdict import decide

_EXACT_WILCOXON_ROWS_MAX_N = 13  # sign-flip enumeration (2^n per row) up to here, scipy per row above
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
    "p_wilcoxon_min",
    "p_holm",
    "holm_family_size",
    "effect_size",
    "effect_size_hedges",
    "p_worse",
    "p_equiv",
    "p_better",
    "mdd",
    "rope",
    "alpha",
    "equiv_prob",
    "confidence",
    "power",
    "verdict",
)


def best_baselines(
    results: pd.DataFrame, *, split: str = "val", metric: str = "balanced_accuracy"
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


def reference_baselines(
    results: pd.DataFrame, *, split: str = "test", metric: str = "balanced_accuracy", selection_split: str = "val"
) -> tuple[pd.Series, list[str]]:
    """Return the best baseline per dataset, chosen on ``selection_split`` where the baselines have results
    there (else on ``split``), and the datasets that fell back to ``split``."""
    chosen = best_baselines(results, split=selection_split, metric=metric)
    fallback = best_baselines(results, split=split, metric=metric)
    missing = sorted(set(fallback.index) - set(chosen.index))
    return pd.concat([chosen, fallback[missing]]).rename("best_baseline"), missing


def comparison_pairs(
    results: pd.DataFrame,
    *,
    split: str = "test",
    primary_metric: str = "balanced_accuracy",
    selection_split: str = "val",
) -> pd.DataFrame:
    """Return the comparisons to run: one row per (dataset, model, reference, kind)."""
    results = validate_results(results)
    roles = model_roles(results)
    plain_of = plain_references(roles)
    is_baseline = roles["is_baseline"].to_dict()
    present = results[results["split"] == split].groupby("dataset")["model"].unique()
    baselines, fell_back = reference_baselines(results, split=split, metric=primary_metric,
                                               selection_split=selection_split)
    if fell_back and split != selection_split:
        warnings.warn(
            f"dataset(s) {fell_back}: no {primary_metric!r} results for the baselines on split {selection_split!r}; "
            f"the best baseline is chosen on {split!r}, the split it is compared on, which favours it",
            stacklevel=2,
        )
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
        return [m for m in METRIC_NAMES if m in present]
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
    selection_split: str = "val",
) -> pd.DataFrame:
    """Return the tidy comparison table (columns :data:`COMPARISON_COLUMNS`) for one split of a study."""
    results = validate_results(results)
    metrics = _resolve_metrics(results, metrics)
    if not (results["split"] == split).any():
        raise DataError(
            f"split {split!r} not in the results table; splits present: {sorted(results['split'].unique())}"
        )
    pairs = comparison_pairs(results, split=split, primary_metric=primary_metric, selection_split=selection_split)
    bad = [c for c in holm_by if c not in COMPARISON_COLUMNS]
    if bad:
        raise DataError(
            f"holm_by={list(holm_by)} names unknown column(s) {bad}; use columns of the comparison table"
        )
    if pairs.empty:
        return pd.DataFrame(columns=list(COMPARISON_COLUMNS))
    table = seed_table(results, split=split, metrics=metrics)
    ropes = {m: _rope_for(rope, m) for m in metrics}
    blocks = [
        _compare_block(a, b, keys, rope=np.array([ropes[m] for m in keys["metric"]]), rho=rho, confidence=confidence)
        .assign(model=model, reference=reference, kind=kind, order=order)
        for model, reference, kind, order, (a, b, keys) in _paired_blocks(table, pairs)
    ]
    if not blocks:
        return pd.DataFrame(columns=list(COMPARISON_COLUMNS))
    out = pd.concat(blocks, ignore_index=True).sort_values(["dataset", "metric", "order"], kind="stable")
    out = out.reset_index(drop=True).assign(split=split)
    out["rope"] = out["metric"].map(ropes)
    hib = out["metric"].map(higher_is_better).to_numpy(bool)
    out["p_worse"] = np.where(hib, out["p_low"], out["p_high"])
    out["p_better"] = np.where(hib, out["p_high"], out["p_low"])
    family = out.groupby(list(holm_by), sort=False).ngroup().to_numpy() if holm_by else np.zeros(len(out), int)
    out["p_holm"], out["holm_family_size"] = holm_grouped(out["p_t"].to_numpy(), family)
    out["mdd"] = _mdd(out["sd_diff"].to_numpy(float), out["n"].to_numpy(), out["holm_family_size"].to_numpy(),
                      alpha=alpha, power=power)
    out = out.assign(alpha=alpha, equiv_prob=equiv_prob, confidence=confidence, power=power)
    improvement = np.where(hib, out["mean_diff"], -out["mean_diff"])
    out["verdict"] = [
        decide(p, imp, worse, eq, better, alpha=alpha, equiv_prob=equiv_prob)
        for p, imp, worse, eq, better in zip(
            out["p_holm"], improvement, out["p_worse"], out["p_equiv"], out["p_better"], strict=True
        )
    ]
    return out[list(COMPARISON_COLUMNS)].reset_index(drop=True)


def _mdd(sd: np.ndarray, n: np.ndarray, family: np.ndarray, *, alpha: float, power: float) -> np.ndarray:
    """Minimum detectable difference per row at alpha / family size; NaN where it does not exist: one seed
    (no sd, no t test, family size 0) or paired differences that never vary (sd 0)."""
    out = np.full(len(sd), np.nan)
    ok = (n >= 2) & (family > 0) & (sd > 0)
    if ok.any():
        out[ok] = minimum_detectable_difference(sd[ok], n[ok], alpha=alpha / family[ok], power=power)
    return out


def _paired_blocks(
    table: pd.DataFrame, pairs: pd.DataFrame
) -> Iterator[tuple[str, str, str, int, tuple[np.ndarray, np.ndarray, pd.DataFrame]]]:
    """Yield, per (model, reference, kind) and number of paired seeds n, the values as two (G x n) arrays
    (one row per dataset x metric, seeds where either is missing dropped) and the rows' dataset and metric."""
    for (model, reference, kind), group in pairs.groupby(["model", "reference", "kind"], sort=False):
        if model not in table.columns or reference not in table.columns:
            continue
        sub = table.loc[table.index.get_level_values("dataset").isin(group["dataset"]), [model, reference]]
        sub = sub.dropna()
        if sub.empty:
            continue
        keys = sub.index.droplevel("seed").to_frame(index=False)
        codes, _ = pd.factorize(pd.MultiIndex.from_frame(keys))
        starts = np.r_[0, np.flatnonzero(np.diff(codes)) + 1]
        counts = np.diff(np.r_[starts, len(codes)])
        order = dict(zip(group["dataset"], group.index, strict=True))
        a, b = sub[model].to_numpy(float), sub[reference].to_numpy(float)
        for n in np.unique(counts):
            first = starts[counts == n]
            rows = first[:, None] + np.arange(n)
            block_keys = keys.iloc[first].reset_index(drop=True)
            yield model, reference, kind, block_keys["dataset"].map(order).to_numpy(), (a[rows], b[rows], block_keys)


def _compare_block(
    a: np.ndarray, b: np.ndarray, keys: pd.DataFrame, *, rope: np.ndarray, rho: float, confidence: float
) -> pd.DataFrame:
    """Return the paired statistics of every row of (G x n) ``a`` - ``b``, vectorised over rows."""
    d = a - b
    rows, n = d.shape
    tt = paired_t(d, confidence=confidence)
    nan = np.full(rows, np.nan)
    if n < 2:
        w_stat, w_p = nan, nan
    elif n <= _EXACT_WILCOXON_ROWS_MAX_N:
        w_stat, w_p = signed_rank_many(d)
    else:
        w_stat, w_p = (np.array(v) for v in zip(*(wilcoxon_signed_rank(row) for row in d), strict=True))
    nonzero = np.count_nonzero(d, axis=1)
    low, inside, high = rope_probabilities_many(d, rope=rope, rho=rho)
    dz = cohens_dz(d) if n >= 2 else nan
    return keys.assign(
        n=n,
        mean_model=a.mean(axis=1),
        mean_reference=b.mean(axis=1),
        mean_diff=tt.mean,
        sd_diff=tt.sd,
        ci_low=tt.ci_low,
        ci_high=tt.ci_high,
        t=tt.t,
        p_t=tt.p,
        wilcoxon_stat=w_stat,
        p_wilcoxon=w_p,
        p_wilcoxon_min=np.where((nonzero > 0) & (n >= 2), np.minimum(1.0, 2.0 ** (1.0 - nonzero)), np.nan),
        effect_size=dz,
        effect_size_hedges=hedges_correction(n - 1) * dz if n >= 3 else nan,
        p_low=low,
        p_equiv=inside,
        p_high=high,
    )
