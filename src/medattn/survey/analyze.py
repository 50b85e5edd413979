"""Statistics of a survey's answers: preference, relevance scores, agreement, and splits by experience.

Input is the tidy export (:mod:`medattn.survey.export`, one row per rater x item x rated panel).

* Win rate per arm: share of a rater's forced choices that picked it, Wilson interval (statsmodels
  ``proportion_confint``; it treats answers as independent, which ignores clustering by rater).
* Bradley-Terry (Luce) strengths from the forced choices with choix's ``ilsr_top1`` (Maystre and
  Grossglauser 2015): each answer is one top-1 choice of the chosen arm over the others shown. A
  small ridge ``alpha`` keeps arms that never win finite. ``choice_share`` = exp(theta) / sum exp(theta).
* Likert: mean score per arm with a t interval over answers (:mod:`medattn.stats.interval`); Friedman test
  across arms with each (rater, item) as a block (:func:`medattn.stats.friedman_test`, scipy's tie-corrected statistic);
  each attention variant vs its plain backbone (same method) paired by (rater, item) with
  :func:`medattn.stats.paired_difference` (t interval, Wilcoxon), Holm-adjusted over comparisons.
* Agreement: Krippendorff's alpha (``krippendorff`` package; ordinal on the scores, nominal on the
  chosen arm) and Kendall's W over the (item, arm) units every rater scored, computed from scipy's
  tie-corrected Friedman statistic as W = chi2 / (m (n - 1)) (m raters, n units).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import choix
import krippendorff
import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from medattn.errors import DataError
from medattn.stats import friedman_test, holm, paired_difference
from medattn.stats.interval import mean_t_interval
from medattn.survey.store import SurveyError

REQUIRED_COLUMNS = ("rater", "years", "item", "model", "backbone", "attention", "method", "arm", "score", "best")
EXPERIENCE_BINS = (0, 5, 15, np.inf)
EXPERIENCE_NAMES = ("< 5 years", "5-14 years", ">= 15 years")
BT_ALPHA = 1e-3


@dataclass(frozen=True)
class SurveyAnalysis:
    """Every table of the survey analysis (each a DataFrame; ``friedman`` None when not computable)."""

    n_raters: int
    n_items: int
    n_answers: int
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


def win_rates(answers: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Return per arm: wins, times shown, win rate and its Wilson interval."""
    table = answers.groupby("arm").agg(wins=("best", "sum"), shown=("best", "size")).reset_index()
    low, high = proportion_confint(table["wins"], table["shown"], alpha=1 - confidence, method="wilson")
    return table.assign(win_rate=table["wins"] / table["shown"], ci_low=np.asarray(low), ci_high=np.asarray(high))


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
    """Return per arm the number of scores, mean, sd and t interval of the mean."""
    rows = []
    for arm, scores in answers.groupby("arm")["score"]:
        r = mean_t_interval(scores, confidence)
        rows.append({"arm": arm, "n": r.n, "mean": r.mean, "sd": r.sd, "ci_low": r.ci_low, "ci_high": r.ci_high})
    return pd.DataFrame(rows)


def score_blocks(answers: pd.DataFrame) -> pd.DataFrame:
    """Return the (rater, item) x arm matrix of scores, complete blocks only."""
    return answers.pivot_table(index=["rater", "item"], columns="arm", values="score", aggfunc="first").dropna()


def friedman_across_arms(answers: pd.DataFrame) -> dict | None:
    """Return the Friedman test of scores across arms ((rater, item) blocks), None with < 3 arms or < 2 blocks."""
    blocks = score_blocks(answers)
    if blocks.shape[1] < 3 or blocks.shape[0] < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            res = friedman_test(blocks, higher_is_better=True)
        except (DataError, ValueError):
            return None
    return {"chi2": res.chi2, "p_value": res.p_value, "blocks": res.n_datasets, "arms": res.n_models,
            "average_ranks": res.average_ranks.to_dict()}


def paired_vs_plain(answers: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Return each attention arm vs its plain backbone with the same method, paired by (rater, item)."""
    arms = answers[["arm", "model", "backbone", "attention", "method"]].drop_duplicates()
    plain = arms[arms["attention"] == "none"].set_index(["backbone", "method"])["arm"]
    blocks = score_blocks(answers)
    rows = []
    for arm in arms[arms["attention"] != "none"].itertuples(index=False):
        reference = plain.get((arm.backbone, arm.method))
        if reference is None or reference not in blocks or arm.arm not in blocks:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = paired_difference(blocks[arm.arm].to_numpy(float), blocks[reference].to_numpy(float),
                                    confidence=confidence)
        rows.append({"arm": arm.arm, "reference": reference, "n": res.n, "mean_diff": res.mean_diff,
                     "ci_low": res.ci_low, "ci_high": res.ci_high, "p_t": res.p_t, "p_wilcoxon": res.p_wilcoxon})
    table = pd.DataFrame(rows, columns=["arm", "reference", "n", "mean_diff", "ci_low", "ci_high", "p_t",
                                        "p_wilcoxon"])
    return table.assign(p_holm=holm(table["p_wilcoxon"].to_numpy(float)) if len(table) else [])


def kendall_w(scores: np.ndarray) -> float:
    """Return Kendall's W (tie-corrected) of a raters x units score matrix without missing values."""
    m, n = scores.shape
    if m < 2 or n < 3:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        chi2 = stats.friedmanchisquare(*scores.T).statistic
    return float(chi2 / (m * (n - 1)))


def agreement(answers: pd.DataFrame) -> pd.DataFrame:
    """Return Krippendorff's alpha (ordinal scores, nominal best choice) and Kendall's W, with their sizes."""
    units = answers.pivot_table(index="rater", columns=["item", "arm"], values="score", aggfunc="first")
    choice = answers[answers["best"] == 1].pivot_table(index="rater", columns="item", values="arm", aggfunc="first")
    codes = {a: i for i, a in enumerate(sorted(answers["arm"].unique()))}
    choice_codes = choice.apply(lambda col: col.map(codes)).to_numpy(float)
    complete = units.dropna(axis=1).to_numpy(float)
    rows = [
        ("krippendorff_alpha_ordinal_scores", _alpha(units.to_numpy(float), "ordinal"), units.shape),
        ("krippendorff_alpha_nominal_best", _alpha(choice_codes, "nominal"), choice.shape),
        ("kendall_w_scores", kendall_w(complete), complete.shape),
    ]
    return pd.DataFrame([{"measure": m, "value": v, "raters": s[0], "units": s[1]} for m, v, s in rows])


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
    return SurveyAnalysis(
        n_raters=answers["rater"].nunique(),
        n_items=answers["item"].nunique(),
        n_answers=len(answers.drop_duplicates(["rater", "item"])),
        win_rates=win_rates(answers, confidence),
        bradley_terry=bradley_terry(answers),
        likert=likert_means(answers, confidence),
        friedman=friedman_across_arms(answers),
        paired=paired_vs_plain(answers, confidence),
        agreement=agreement(answers),
        by_experience=by_experience(answers),
    )
