"""Comparing models across datasets (Demsar 2006, JMLR 7:1-30): average ranks, Friedman, Nemenyi, CD.

Each dataset ranks the models by their mean score over seeds (rank 1 = best, ties share the average
rank). The Friedman test (``scipy.stats.friedmanchisquare``, tie-corrected) asks whether all models
rank alike; the Iman-Davenport F is its less conservative variant. Nemenyi's post-hoc p-values come
from ``scikit_posthocs.posthoc_nemenyi_friedman``; two models differ at level alpha when their average
ranks differ by more than the critical difference CD = q_alpha * sqrt(k (k + 1) / (6 N)), with
q_alpha the studentized range quantile (k groups, infinite df) divided by sqrt(2).

Demsar's worked example uses the formulas without the tie correction; both are reported:
``chi2_uncorrected`` = 12N / (k(k+1)) * (sum_j R_j^2 - k (k+1)^2 / 4) from the average ranks, and
the Iman-Davenport F from either statistic, F = (N-1) chi2 / (N (k-1) - chi2). On Demsar's data (which
has tied ranks) the tie-corrected chi2 is 10.23 and the uncorrected one 9.28; the report prints both.
When every dataset ties all models, scipy's tie correction divides 0 by 0; there is then no rank
difference at all, so chi2 = 0, p = 1 (and F = 0, p = 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scikit_posthocs as sp
from scipy import stats

from medattn.errors import DataError
from medattn.rundir.metrics import higher_is_better
from medattn.rundir.table import validate_results


@dataclass(frozen=True)
class FriedmanResult:
    """Friedman test over N datasets (blocks) and k models."""

    n_datasets: int
    n_models: int
    average_ranks: pd.Series
    chi2: float
    p_value: float
    f_statistic: float
    p_f: float
    df1: int
    df2: int
    chi2_uncorrected: float
    f_uncorrected: float
    p_uncorrected: float = float("nan")
    p_f_uncorrected: float = float("nan")


@dataclass(frozen=True)
class CrossDatasetResult:
    """Everything needed for the across-datasets section of a report and its CD diagram."""

    scores: pd.DataFrame
    ranks: pd.DataFrame
    average_ranks: pd.Series
    friedman: FriedmanResult
    nemenyi_p: pd.DataFrame
    critical_difference: float
    alpha: float


def score_matrix(
    results: pd.DataFrame,
    *,
    split: str = "test",
    metric: str = "balanced_accuracy",
    models: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Return mean ``metric`` over seeds as dataset x model; every model must cover every dataset."""
    results = validate_results(results)
    sub = results[(results["split"] == split) & (results["metric"] == metric)]
    if models is not None:
        sub = sub[sub["model"].isin(list(models))]
    if sub.empty:
        raise DataError(f"no results for split {split!r} and metric {metric!r} (models={models})")
    scores = sub.groupby(["dataset", "model"])["value"].mean().unstack("model")
    incomplete = scores.columns[scores.isna().any()].tolist()
    if incomplete:
        raise DataError(
            f"model(s) {incomplete} lack {metric} results on some datasets; ranking needs every model on "
            "every dataset: pass models=[...] to rank a complete subset"
        )
    return scores


def rank_table(scores: pd.DataFrame, *, higher_is_better: bool = True) -> pd.DataFrame:
    """Return per-dataset ranks (1 = best, ties averaged) of a dataset x model score matrix."""
    values = -scores.to_numpy(float) if higher_is_better else scores.to_numpy(float)
    return pd.DataFrame(stats.rankdata(values, axis=1), index=scores.index, columns=scores.columns)


def average_ranks(scores: pd.DataFrame, *, higher_is_better: bool = True) -> pd.Series:
    """Return each model's average rank over datasets, best first."""
    return (
        rank_table(scores, higher_is_better=higher_is_better)
        .mean(axis=0)
        .sort_values()
        .rename("average_rank")
    )


def friedman_chi2_from_ranks(avg_ranks: Sequence[float], n_datasets: int) -> float:
    """Return Friedman's chi2_F from average ranks (Demsar 2006 eq. without tie correction)."""
    r = np.asarray(avg_ranks, dtype=float)
    k = len(r)
    return float(12 * n_datasets / (k * (k + 1)) * (np.sum(r**2) - k * (k + 1) ** 2 / 4))


def iman_davenport(chi2: float, n_datasets: int, n_models: int) -> tuple[float, float]:
    """Return (F_F, p) of the Iman-Davenport statistic, F with (k-1, (k-1)(N-1)) degrees of freedom."""
    n, k = n_datasets, n_models
    denom = n * (k - 1) - chi2
    f = np.inf if denom <= 0 else (n - 1) * chi2 / denom
    return float(f), float(stats.f.sf(f, k - 1, (k - 1) * (n - 1)))


def _check_matrix(scores: pd.DataFrame) -> None:
    """Raise DataError unless ``scores`` has at least 2 datasets, 3 models and no missing values."""
    n, k = scores.shape
    if n < 2 or k < 3:
        raise DataError(
            f"the Friedman/Nemenyi analysis needs >= 2 datasets and >= 3 models, got {n} dataset(s) and "
            f"{k} model(s); with 2 models use the paired comparison per dataset instead"
        )
    if scores.isna().any().any():
        raise DataError("score matrix has missing values; every model needs a score on every dataset")


def friedman_test(scores: pd.DataFrame, *, higher_is_better: bool = True) -> FriedmanResult:
    """Return the Friedman test (scipy, tie-corrected) and Iman-Davenport F of a dataset x model matrix."""
    _check_matrix(scores)
    n, k = scores.shape
    values = scores.to_numpy(float)
    ranks = average_ranks(scores, higher_is_better=higher_is_better)
    if np.all(values == values[:, :1]):  # every dataset ties every model: no rank differences at all
        chi2, p_value = 0.0, 1.0
    else:
        res = stats.friedmanchisquare(*values.T)
        chi2, p_value = float(res.statistic), float(res.pvalue)
    f, p_f = iman_davenport(chi2, n, k)
    chi2_u = friedman_chi2_from_ranks(ranks.to_numpy(), n)
    f_u, p_f_u = iman_davenport(chi2_u, n, k)
    return FriedmanResult(
        n_datasets=n,
        n_models=k,
        average_ranks=ranks,
        chi2=chi2,
        p_value=p_value,
        f_statistic=f,
        p_f=p_f,
        df1=k - 1,
        df2=(k - 1) * (n - 1),
        chi2_uncorrected=chi2_u,
        f_uncorrected=f_u,
        p_uncorrected=float(stats.chi2.sf(chi2_u, k - 1)),
        p_f_uncorrected=p_f_u,
    )


def nemenyi_test(scores: pd.DataFrame) -> pd.DataFrame:
    """Return the model x model matrix of Nemenyi post-hoc p-values (scikit-posthocs)."""
    _check_matrix(scores)
    p = sp.posthoc_nemenyi_friedman(scores.to_numpy(float))
    return pd.DataFrame(p.to_numpy(), index=scores.columns, columns=scores.columns)


def nemenyi_q(n_models: int, alpha: float = 0.05) -> float:
    """Return Nemenyi's q_alpha: the studentized range quantile (k, df = inf) divided by sqrt(2)."""
    if n_models < 2 or not 0 < alpha < 1:
        raise DataError(f"nemenyi_q needs n_models >= 2 and 0 < alpha < 1, got {n_models}, {alpha}")
    return float(stats.studentized_range.ppf(1 - alpha, n_models, np.inf) / np.sqrt(2))


def critical_difference(n_models: int, n_datasets: int, alpha: float = 0.05) -> float:
    """Return the Nemenyi critical difference of average ranks, q_alpha * sqrt(k (k + 1) / (6 N))."""
    k = n_models
    return nemenyi_q(k, alpha) * float(np.sqrt(k * (k + 1) / (6 * n_datasets)))


def compare_across_datasets(
    results: pd.DataFrame,
    *,
    split: str = "test",
    metric: str = "balanced_accuracy",
    alpha: float = 0.05,
    models: Sequence[str] | None = None,
) -> CrossDatasetResult:
    """Return average ranks, Friedman, Nemenyi and the critical difference for the study's models."""
    scores = score_matrix(results, split=split, metric=metric, models=models)
    hib = higher_is_better(metric)
    fr = friedman_test(scores, higher_is_better=hib)
    return CrossDatasetResult(
        scores=scores,
        ranks=rank_table(scores, higher_is_better=hib),
        average_ranks=fr.average_ranks,
        friedman=fr,
        nemenyi_p=nemenyi_test(scores),
        critical_difference=critical_difference(scores.shape[1], scores.shape[0], alpha),
        alpha=alpha,
    )
