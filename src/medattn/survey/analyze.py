"""Statistics of a survey's answers: preference, relevance scores, agreement, and splits by experience.

Input is the tidy export (:mod:`medattn.survey.export`, one row per rater x item x rated panel).
A rater's answers are not independent of each other (each rater has their own taste), so every
interval and test is clustered by rater: the unit of replication is the rater, not the answer.

* Win rate per arm: share of the forced choices that picked it. Interval: least squares of the 0/1
  choice on a constant (statsmodels OLS) with cluster-robust (CR1) standard errors by rater and a t
  reference with (raters - 1) degrees of freedom (Cameron and Miller 2015, "A practitioner's guide
  to cluster-robust inference"). Departure from the first version: a Wilson interval over answers,
  which treated one rater's 40 answers as 40 independent people (tests/survey/test_survey_clustered.py:
  with a planted rater-level preference it covered the truth in about half of the simulations).
* Bradley-Terry (Luce) strengths from the forced choices with choix's ``ilsr_top1`` (Maystre and
  Grossglauser 2015): each answer is one top-1 choice of the chosen arm over the others shown. A
  small ridge ``alpha`` keeps arms that never win finite. ``choice_share`` = exp(theta) / sum exp(theta).
  A point estimate (no interval).
* Likert: mean score per arm with the same clustered interval. Friedman test across arms on each
  rater's mean score per arm (raters are the blocks; :func:`medattn.stats.friedman_test`). Each attention
  variant vs its plain backbone (same method): the mean of the (rater, item) score differences with
  its clustered interval and t test, and a Wilcoxon signed-rank test of the raters' mean differences;
  Holm-adjusted over comparisons.
* No p-value with fewer than :data:`MIN_RATERS` raters: "too few raters" instead. With n raters an
  exact rater-level test (sign flips of the raters' mean differences) cannot give a two-sided p below
  2 / 2^n, which is 0.0625 at n = 5: no result of five raters could be significant at 0.05, and a
  p-value computed from their answers as if independent is an artefact (medattn <= 0.1 reported
  p = 2.5e-05 for one rater). Intervals are shown from 2 raters, flagged by ``raters`` in each table.
* Agreement: Krippendorff's alpha (``krippendorff`` package; ordinal on the scores, nominal on the
  chosen arm) and Kendall's W over the (item, arm) units every rater scored (tie-corrected,
  equal to scipy's Friedman chi2 / (m (n - 1))), each with a percentile bootstrap
  interval over units (items resampled with all their ratings; Hayes and Krippendorff 2007 resample
  units too), :data:`AGREEMENT_RESAMPLES` resamples, fixed seed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import choix
import krippendorff
import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from medattn.errors import DataError
from medattn.stats import friedman_test, holm
from medattn.survey.store import SurveyError

REQUIRED_COLUMNS = ("rater", "years", "item", "model", "backbone", "attention", "method", "arm", "score", "best")
EXPERIENCE_BINS = (0, 5, 15, np.inf)
EXPERIENCE_NAMES = ("< 5 years", "5-14 years", ">= 15 years")
BT_ALPHA = 1e-3
MIN_RATERS = 6
AGREEMENT_RESAMPLES = 500
TOO_FEW = (f"too few raters for p-values: with fewer than {MIN_RATERS} raters no rater-level test can reach "
           "p < 0.05; intervals are clustered by rater and wide")


@dataclass(frozen=True)
class SurveyAnalysis:
    """Every table of the survey analysis (each a DataFrame; ``friedman`` None when not computable)."""

    n_raters: int
    n_items: int
    n_answers: int
    note: str
    win_rates: pd.DataFrame
    bradley_terry: pd.DataFrame
    likert: pd.DataFrame
    friedman: dict | None
    paired: pd.DataFrame
    agreement: pd.DataFrame
    by_experience: pd.DataFrame


def check_answers(answers: pd.DataFrame, source: str = "answers") -> pd.DataFrame:
    """Return ``answers`` after checking its columns and values (one best choice per rater and item)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in answers.columns]
    if missing:
        raise SurveyError(f"{source}: missing column(s) {missing}; expected the `medattn survey analyze` export")
    if answers.empty:
        raise SurveyError(f"{source}: no answers yet")
    if not answers["score"].between(1, 5).all():
        raise SurveyError(f"{source}: column score must be within 1-5")
    best = answers.groupby(["rater", "item"])["best"].sum()
    if (best != 1).any():
        raise SurveyError(f"{source}: every rater and item needs exactly one best=1 row, rater/item "
                          f"{best[best != 1].index[0]} has {best[best != 1].iloc[0]}")
    return answers.assign(attention=answers["attention"].fillna("none").astype(str))


@dataclass(frozen=True)
class ClusteredMean:
    """A mean with its rater-clustered interval and t test against ``null`` (NaN where undefined or withheld)."""

    mean: float
    ci_low: float
    ci_high: float
    p_value: float
    raters: int


def clustered_mean(values: np.ndarray, raters: np.ndarray, confidence: float = 0.95, null: float = 0.0,
                   with_p: bool = True) -> ClusteredMean:
    """Return the mean of ``values`` with a CR1 cluster-robust t interval by rater (statsmodels OLS on a constant).

    The interval needs >= 2 raters; the p-value (t test of mean = ``null``, raters - 1 df) needs
    :data:`MIN_RATERS` raters and ``with_p``.
    """
    values = np.asarray(values, float)
    groups = pd.factorize(np.asarray(raters))[0]
    n_raters = int(groups.max() + 1) if len(groups) else 0
    mean = float(values.mean()) if len(values) else float("nan")
    if n_raters < 2:
        return ClusteredMean(mean, float("nan"), float("nan"), float("nan"), n_raters)
    fit = sm.OLS(values, np.ones_like(values)).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    low, high = fit.conf_int(alpha=1 - confidence)[0]
    se = float(fit.bse[0])
    p = float("nan")
    if with_p and n_raters >= MIN_RATERS:
        p = float(2 * stats.t.sf(abs(mean - null) / se, n_raters - 1)) if se > 0 else float(mean != null)
    return ClusteredMean(mean, float(low), float(high), p, n_raters)


def win_rates(answers: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Return per arm: wins, times shown, win rate and its rater-clustered interval, and the number of raters."""
    rows = []
    for arm, group in answers.groupby("arm"):
        r = clustered_mean(group["best"].to_numpy(float), group["rater"].to_numpy(), confidence, with_p=False)
        rows.append({"arm": arm, "wins": int(group["best"].sum()), "shown": len(group), "win_rate": r.mean,
                     "ci_low": r.ci_low, "ci_high": r.ci_high, "raters": r.raters})
    return pd.DataFrame(rows)


def top1_choices(answers: pd.DataFrame, arms: list[str]) -> list[tuple[int, list[int]]]:
    """Return every answer as a choix top-1 observation (chosen arm index, indices of the others shown)."""
    code = {a: i for i, a in enumerate(arms)}
    coded = answers.assign(code=answers["arm"].map(code))
    winners = coded[coded["best"] == 1].set_index(["rater", "item"])["code"]
    shown = coded.groupby(["rater", "item"])["code"].agg(list)
    return [(int(w), [c for c in shown[key] if c != w]) for key, w in winners.items()]


def bradley_terry(answers: pd.DataFrame, alpha: float = BT_ALPHA) -> pd.DataFrame:
    """Return per arm the Bradley-Terry/Luce log-strength (choix ``ilsr_top1``, mean 0) and choice share."""
    arms = sorted(answers["arm"].unique())
    theta = choix.ilsr_top1(len(arms), top1_choices(answers, arms), alpha=alpha)
    share = np.exp(theta) / np.exp(theta).sum()
    table = pd.DataFrame({"arm": arms, "strength": theta, "choice_share": share})
    return table.sort_values("strength", ascending=False).reset_index(drop=True)


def likert_means(answers: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Return per arm the number of scores, mean, sd and the rater-clustered interval of the mean."""
    rows = []
    for arm, group in answers.groupby("arm"):
        r = clustered_mean(group["score"].to_numpy(float), group["rater"].to_numpy(), confidence, with_p=False)
        rows.append({"arm": arm, "n": len(group), "mean": r.mean, "sd": float(group["score"].std(ddof=1)),
                     "ci_low": r.ci_low, "ci_high": r.ci_high, "raters": r.raters})
    return pd.DataFrame(rows)


def score_blocks(answers: pd.DataFrame) -> pd.DataFrame:
    """Return the (rater, item) x arm matrix of scores, complete blocks only."""
    return answers.pivot_table(index=["rater", "item"], columns="arm", values="score", aggfunc="first").dropna()


def friedman_across_arms(answers: pd.DataFrame) -> dict | None:
    """Return the Friedman test across arms of each rater's mean score (raters as blocks).

    None with < 3 arms or fewer than :data:`MIN_RATERS` raters with every arm scored.
    """
    blocks = score_blocks(answers).groupby(level="rater").mean()
    if blocks.shape[1] < 3 or blocks.shape[0] < MIN_RATERS:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            res = friedman_test(blocks, higher_is_better=True)
        except (DataError, ValueError):
            return None
    return {"chi2": res.chi2, "p_value": res.p_value, "blocks": res.n_datasets, "arms": res.n_models,
            "average_ranks": res.average_ranks.to_dict()}


def _rater_wilcoxon(diff: pd.Series) -> float:
    """Return the Wilcoxon signed-rank p of the raters' mean differences (NaN below MIN_RATERS or all zero)."""
    per_rater = diff.groupby(level="rater").mean().to_numpy(float)
    if len(per_rater) < MIN_RATERS or not np.any(per_rater != 0):
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.wilcoxon(per_rater).pvalue)


def paired_vs_plain(answers: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Return each attention arm vs its plain backbone with the same method, paired by (rater, item), by rater."""
    arms = answers[["arm", "model", "backbone", "attention", "method"]].drop_duplicates()
    plain = arms[arms["attention"] == "none"].set_index(["backbone", "method"])["arm"]
    blocks = score_blocks(answers)
    rows = []
    for arm in arms[arms["attention"] != "none"].itertuples(index=False):
        reference = plain.get((arm.backbone, arm.method))
        if reference is None or reference not in blocks or arm.arm not in blocks:
            continue
        diff = blocks[arm.arm] - blocks[reference]
        r = clustered_mean(diff.to_numpy(float), diff.index.get_level_values("rater").to_numpy(), confidence)
        rows.append({"arm": arm.arm, "reference": reference, "n": len(diff), "raters": r.raters,
                     "mean_diff": r.mean, "ci_low": r.ci_low, "ci_high": r.ci_high, "p_t": r.p_value,
                     "p_wilcoxon": _rater_wilcoxon(diff)})
    table = pd.DataFrame(rows, columns=["arm", "reference", "n", "raters", "mean_diff", "ci_low", "ci_high", "p_t",
                                        "p_wilcoxon"])
    p = table["p_wilcoxon"].to_numpy(float)
    adjusted = np.full(len(p), np.nan)
    if np.isfinite(p).any():
        adjusted[np.isfinite(p)] = holm(p[np.isfinite(p)])
    return table.assign(p_holm=adjusted)


def kendall_w(scores: np.ndarray) -> float:
    """Return Kendall's W (tie-corrected) of a raters x units score matrix without missing values.

    W = 12 S / (m^2 (n^3 - n) - m T), S the squared deviations of the units' rank sums, T the raters'
    tie sums (t^3 - t); equal to scipy's tie-corrected Friedman chi2 / (m (n - 1)), computed with arrays.
    """
    m, n = scores.shape
    if m < 2 or n < 3:
        return float("nan")
    ranks = stats.rankdata(scores, axis=1)
    spread = float(((ranks.sum(axis=0) - m * (n + 1) / 2) ** 2).sum())
    ties = sum(float((c ** 3 - c).sum()) for c in (np.unique(row, return_counts=True)[1] for row in scores))
    denominator = m ** 2 * (n ** 3 - n) - m * ties
    return float(12 * spread / denominator) if denominator > 0 else float("nan")


def _bootstrap_units(data: np.ndarray, measure, seed: int = 0,
                     resamples: int = AGREEMENT_RESAMPLES) -> tuple[float, float]:
    """Return the 95% percentile interval of ``measure`` over units (columns) resampled with replacement."""
    if data.shape[0] < 2 or data.shape[1] < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = np.array([measure(data[:, rng.integers(0, data.shape[1], data.shape[1])]) for _ in range(resamples)])
    values = values[np.isfinite(values)]
    if len(values) < resamples / 2:
        return float("nan"), float("nan")
    low, high = np.quantile(values, [0.025, 0.975])
    return float(low), float(high)


def agreement(answers: pd.DataFrame) -> pd.DataFrame:
    """Return Krippendorff's alpha (ordinal scores, nominal best choice) and Kendall's W with intervals and sizes."""
    units = answers.pivot_table(index="rater", columns=["item", "arm"], values="score", aggfunc="first")
    choice = answers[answers["best"] == 1].pivot_table(index="rater", columns="item", values="arm", aggfunc="first")
    codes = {a: i for i, a in enumerate(sorted(answers["arm"].unique()))}
    choice_codes = choice.apply(lambda col: col.map(codes)).to_numpy(float)
    complete = units.dropna(axis=1).to_numpy(float)
    measures = [
        ("krippendorff_alpha_ordinal_scores", units.to_numpy(float), lambda d: _alpha(d, "ordinal")),
        ("krippendorff_alpha_nominal_best", choice_codes, lambda d: _alpha(d, "nominal")),
        ("kendall_w_scores", complete, kendall_w),
    ]
    rows = []
    for name, data, measure in measures:
        value = measure(data)
        low, high = _bootstrap_units(data, measure) if np.isfinite(value) else (float("nan"), float("nan"))
        rows.append({"measure": name, "value": value, "ci_low": low, "ci_high": high, "raters": data.shape[0],
                     "units": data.shape[1]})
    return pd.DataFrame(rows)


def _alpha(data: np.ndarray, level: str) -> float:
    """Return Krippendorff's alpha of a raters x units matrix (NaN = missing), NaN when undefined."""
    pairable = (np.sum(~np.isnan(data), axis=0) >= 2).sum() if data.size else 0
    if data.shape[0] < 2 or pairable == 0 or len(np.unique(data[~np.isnan(data)])) < 2:
        return float("nan")
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement=level))


def by_experience(answers: pd.DataFrame) -> pd.DataFrame:
    """Return win rate and mean score per arm within each experience band (years of practice)."""
    years = pd.to_numeric(answers["years"], errors="coerce")
    band = pd.cut(years, EXPERIENCE_BINS, right=False, labels=EXPERIENCE_NAMES)
    table = (answers.assign(experience=band).groupby(["experience", "arm"], observed=True)
             .agg(raters=("rater", "nunique"), win_rate=("best", "mean"), mean_score=("score", "mean"))
             .reset_index())
    table["experience"] = table["experience"].astype(str)
    return table


def analyze_answers(answers: pd.DataFrame, confidence: float = 0.95, source: str = "answers") -> SurveyAnalysis:
    """Return every survey statistic of the tidy ``answers`` table."""
    answers = check_answers(answers, source)
    n_raters = answers["rater"].nunique()
    return SurveyAnalysis(
        n_raters=n_raters,
        n_items=answers["item"].nunique(),
        n_answers=len(answers.drop_duplicates(["rater", "item"])),
        note=TOO_FEW if n_raters < MIN_RATERS else "",
        win_rates=win_rates(answers, confidence),
        bradley_terry=bradley_terry(answers),
        likert=likert_means(answers, confidence),
        friedman=friedman_across_arms(answers),
        paired=paired_vs_plain(answers, confidence),
        agreement=agreement(answers),
        by_experience=by_experience(answers),
    )
