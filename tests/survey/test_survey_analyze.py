"""Survey statistics equal the libraries' on the same data, and planted preferences are recovered."""

from __future__ import annotations

import choix
import krippendorff
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from medattn.survey.analyze import analyze_answers, bradley_terry, kendall_w
from medattn.survey.store import SurveyError

ARMS = {"resnet18/gradcam": ("resnet18", "resnet18", "none", "gradcam"),
        "resnet18+se/gradcam": ("resnet18+se", "resnet18", "se", "gradcam"),
        "resnet18+cbam/gradcam": ("resnet18+cbam", "resnet18", "cbam", "gradcam")}


def simulate(seed: int, n_raters: int, n_items: int, arms: list[str], p_best: np.ndarray,
             shift: dict[str, float] | None = None) -> pd.DataFrame:
    """Return answers of simulated raters: best arm drawn with ``p_best``, scores 1-5 = 3 + shift + noise."""
    rng = np.random.default_rng(seed)
    shift = shift or {}
    rows = []
    for rater in range(1, n_raters + 1):
        years = [2, 8, 20][rater % 3]
        for item in range(n_items):
            best = rng.choice(len(arms), p=p_best)
            item_effect = rng.normal(0, 0.7)
            for k, arm in enumerate(arms):
                model, backbone, attention, method = ARMS[arm]
                score = int(np.clip(np.rint(3 + shift.get(arm, 0) + item_effect + rng.normal(0, 0.7)), 1, 5))
                rows.append({"rater": rater, "years": years, "item": item, "model": model, "backbone": backbone,
                             "attention": attention, "method": method, "arm": arm, "score": score,
                             "best": int(k == best), "label": "ABC"[k]})
    return pd.DataFrame(rows)


def test_bradley_terry_equals_choix_on_the_same_choices():
    arms = list(ARMS)
    answers = simulate(1, 6, 30, arms, np.array([0.2, 0.5, 0.3]))
    # the top-1 observations, built here independently of the module
    data = []
    for (_, _), group in answers.groupby(["rater", "item"]):
        codes = sorted(arms)
        winner = codes.index(group.loc[group["best"] == 1, "arm"].item())
        data.append((winner, [codes.index(a) for a in group["arm"] if codes.index(a) != winner]))
    expected = choix.ilsr_top1(3, data, alpha=1e-3)
    table = bradley_terry(answers).set_index("arm").loc[sorted(arms)]
    np.testing.assert_allclose(table["strength"], expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(table["choice_share"], np.exp(expected) / np.exp(expected).sum())


def test_agreement_equals_krippendorff_and_kendall_w_is_the_textbook_value():
    arms = list(ARMS)
    answers = simulate(2, 4, 12, arms, np.array([0.3, 0.4, 0.3]), {"resnet18+se/gradcam": 1.0})
    answers = answers.drop(index=answers.index[(answers["rater"] == 4) & (answers["item"] == 3)])  # a missing answer
    result = analyze_answers(answers)
    matrix = np.full((4, 12 * 3), np.nan)
    for row in answers.itertuples():
        matrix[row.rater - 1, row.item * 3 + sorted(arms).index(row.arm)] = row.score
    expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement="ordinal")
    agreement = result.agreement.set_index("measure")
    assert agreement.loc["krippendorff_alpha_ordinal_scores", "value"] == pytest.approx(expected, abs=1e-12)
    choices = np.full((4, 12), np.nan)
    for row in answers[answers["best"] == 1].itertuples():
        choices[row.rater - 1, row.item] = sorted(arms).index(row.arm)
    nominal = krippendorff.alpha(reliability_data=choices, level_of_measurement="nominal")
    assert agreement.loc["krippendorff_alpha_nominal_best", "value"] == pytest.approx(nominal, abs=1e-12)
    assert agreement.loc["kendall_w_scores", "units"] == 11 * 3  # only units every rater scored
    # Kendall's W, untied textbook case: 3 raters rank 4 objects; rank sums 4, 6, 8, 12, S = 35, W = 12S/(m^2(n^3-n))
    ranks = np.array([[1, 2, 3, 4], [2, 1, 3, 4], [1, 3, 2, 4]], float)
    assert kendall_w(ranks) == pytest.approx(12 * 35 / (9 * 60))
    assert kendall_w(np.tile([1, 2, 3, 4, 5], (3, 1)).astype(float)) == pytest.approx(1.0)


def cr1_interval(values: np.ndarray, raters: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """The CR1 cluster-robust t interval of a mean by hand: V = G/(G-1) sum_g (sum_i e_gi)^2 / N^2, t with G-1 df."""
    mean = values.mean()
    sums = pd.Series(values - mean).groupby(raters).sum().to_numpy()
    g, n = len(sums), len(values)
    se = np.sqrt(g / (g - 1) * (sums ** 2).sum() / n ** 2)
    half = stats.t.ppf(0.5 + confidence / 2, g - 1) * se
    return mean - half, mean + half, 2 * stats.t.sf(abs(mean) / se, g - 1)


def test_friedman_and_paired_comparisons_are_by_rater_and_equal_scipy():
    arms = list(ARMS)
    answers = simulate(3, 8, 10, arms, np.array([0.3, 0.4, 0.3]), {"resnet18+se/gradcam": 0.8})
    result = analyze_answers(answers)
    blocks = answers.pivot_table(index=["rater", "item"], columns="arm", values="score")
    per_rater = blocks.groupby(level="rater").mean()
    chi2, p = stats.friedmanchisquare(*(per_rater[a] for a in per_rater.columns))
    assert result.friedman["blocks"] == 8
    assert result.friedman["chi2"] == pytest.approx(chi2) and result.friedman["p_value"] == pytest.approx(p)
    paired = result.paired.set_index("arm")
    assert set(paired.index) == {"resnet18+se/gradcam", "resnet18+cbam/gradcam"}
    assert (paired["reference"] == "resnet18/gradcam").all() and (paired["raters"] == 8).all()
    diff = blocks["resnet18+se/gradcam"] - blocks["resnet18/gradcam"]
    low, high, p_t = cr1_interval(diff.to_numpy(), diff.index.get_level_values("rater").to_numpy())
    row = paired.loc["resnet18+se/gradcam"]
    assert row["mean_diff"] == pytest.approx(diff.mean())
    assert (row["ci_low"], row["ci_high"], row["p_t"]) == pytest.approx((low, high, p_t))
    assert row["p_wilcoxon"] == pytest.approx(stats.wilcoxon(diff.groupby(level="rater").mean()).pvalue)
    # the planted +0.8 shift is found (8 raters: exact Wilcoxon p = 2/256), the absent one (cbam) is not
    assert row["p_holm"] < 0.05
    assert paired.loc["resnet18+cbam/gradcam", "p_holm"] > 0.05


def test_planted_preference_of_70_percent_is_recovered():
    arms = ["resnet18/gradcam", "resnet18+se/gradcam"]
    answers = simulate(4, 20, 40, arms, np.array([0.3, 0.7]))
    result = analyze_answers(answers)
    b = result.win_rates.set_index("arm").loc["resnet18+se/gradcam"]
    assert b["shown"] == 800 and b["ci_low"] <= 0.70 <= b["ci_high"] and b["ci_low"] > 0.5
    assert b["ci_high"] - b["ci_low"] < 0.08
    share = result.bradley_terry.set_index("arm")["choice_share"]
    assert share["resnet18+se/gradcam"] == pytest.approx(b["win_rate"], abs=1e-3)  # two arms: BT = win share
    # and no preference where none was planted
    null = analyze_answers(simulate(5, 20, 40, arms, np.array([0.5, 0.5]))).win_rates.set_index("arm")
    assert null.loc["resnet18+se/gradcam", "ci_low"] <= 0.5 <= null.loc["resnet18+se/gradcam", "ci_high"]
    assert result.friedman is None  # two arms: no Friedman test
    assert set(result.by_experience["experience"]) == {"< 5 years", "5-14 years", ">= 15 years"}
    assert result.by_experience.groupby("experience")["raters"].first().sum() == 20


def test_bad_answer_tables_are_refused_with_the_reason():
    answers = simulate(6, 2, 3, list(ARMS), np.array([0.3, 0.4, 0.3]))
    with pytest.raises(SurveyError, match="missing column"):
        analyze_answers(answers.drop(columns="score"))
    with pytest.raises(SurveyError, match="exactly one best=1"):
        analyze_answers(answers.assign(best=1))
    with pytest.raises(SurveyError, match="no answers yet"):
        analyze_answers(answers.iloc[:0])
