"""Friedman / Iman-Davenport / Nemenyi / critical difference against Demsar's worked example.

Demsar, J. (2006). Statistical comparisons of classifiers over multiple data sets. JMLR 7:1-30,
Section 3.2.2 and Table 6: AUC of C4.5 with default settings, with m tuned (C4.5+m), with cf tuned
(C4.5+cf) and with both (C4.5+m+cf) on 14 UCI data sets. Published: average ranks 3.143, 2.000,
2.893, 1.964; chi2_F = 9.28; F_F = 3.69 (F with 3 and 39 df); q_0.05 = 2.569 and CD = 1.25 for k = 4,
N = 14 at alpha 0.05 (no pair differs); q_0.10 = 2.291 and CD = 1.12 at alpha 0.10, where C4.5 is
significantly worse than C4.5+m and C4.5+m+cf (Figure 1a). Table 5a gives q_0.05 for k = 2..10.
"""

import numpy as np
import pandas as pd
import pytest
import scikit_posthocs as sp
from scipy import stats

from medattn.errors import DataError
from medattn.stats.ranking import (
    average_ranks,
    compare_across_datasets,
    critical_difference,
    friedman_chi2_from_ranks,
    friedman_test,
    iman_davenport,
    nemenyi_q,
    nemenyi_test,
    rank_table,
    score_matrix,
)

MODELS = ["C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf"]
DATASETS = [
    "adult (sample)",
    "breast cancer",
    "breast cancer wisconsin",
    "cmc",
    "ionosphere",
    "iris",
    "liver disorders",
    "lung cancer",
    "lymphography",
    "mushroom",
    "primary tumor",
    "rheum",
    "voting",
    "wine",
]
AUC = np.array(
    [
        [0.763, 0.768, 0.771, 0.798],
        [0.599, 0.591, 0.590, 0.569],
        [0.954, 0.971, 0.968, 0.967],
        [0.628, 0.661, 0.654, 0.657],
        [0.882, 0.888, 0.886, 0.898],
        [0.936, 0.931, 0.916, 0.931],
        [0.661, 0.668, 0.609, 0.685],
        [0.583, 0.583, 0.563, 0.625],
        [0.775, 0.838, 0.866, 0.875],
        [1.000, 1.000, 1.000, 1.000],
        [0.940, 0.962, 0.965, 0.962],
        [0.619, 0.666, 0.614, 0.669],
        [0.972, 0.981, 0.975, 0.975],
        [0.957, 0.978, 0.946, 0.970],
    ]
)
# The ranks printed in Table 6 (computed by the paper from unrounded AUCs).
PAPER_RANKS = np.array(
    [
        [4, 3, 2, 1],
        [1, 2, 3, 4],
        [4, 1, 2, 3],
        [4, 1, 3, 2],
        [4, 2, 3, 1],
        [1, 2.5, 4, 2.5],
        [3, 2, 4, 1],
        [2.5, 2.5, 4, 1],
        [4, 3, 2, 1],
        [2.5, 2.5, 2.5, 2.5],
        [4, 2.5, 1, 2.5],
        [3, 2, 4, 1],
        [4, 1, 2, 3],
        [3, 1, 4, 2],
    ]
)


def paper_scores() -> pd.DataFrame:
    """Table 6 AUCs; on 'voting' the paper ranks C4.5+cf (2) above C4.5+m+cf (3) although both print as
    0.975, so the rounded tie is broken the paper's way."""
    auc = AUC.copy()
    auc[DATASETS.index("voting"), 3] = 0.9749
    return pd.DataFrame(auc, index=pd.Index(DATASETS, name="dataset"), columns=pd.Index(MODELS, name="model"))


def test_ranks_reproduce_table_6():
    assert rank_table(paper_scores()).to_numpy() == pytest.approx(PAPER_RANKS)
    ranks = average_ranks(paper_scores())
    assert ranks[MODELS].round(3).tolist() == [3.143, 2.000, 2.893, 1.964]
    assert ranks.index[0] == "C4.5+m+cf"


def test_friedman_statistics_of_the_paper():
    fr = friedman_test(paper_scores())
    assert fr.chi2_uncorrected == pytest.approx(9.28, abs=0.005)
    assert fr.f_uncorrected == pytest.approx(3.69, abs=0.005)
    assert (fr.df1, fr.df2) == (3, 39)
    assert iman_davenport(9.28, 14, 4)[0] == pytest.approx(3.69, abs=0.005)
    assert friedman_chi2_from_ranks([3.143, 2.000, 2.893, 1.964], 14) == pytest.approx(9.28, abs=0.01)


def test_friedman_equals_scipy_with_tie_correction():
    scores = paper_scores()
    res = stats.friedmanchisquare(*(scores[m] for m in MODELS))
    fr = friedman_test(scores)
    assert fr.chi2 == pytest.approx(res.statistic)
    assert fr.p_value == pytest.approx(res.pvalue)
    # ties on iris, lung cancer, primary tumor (pairs) and mushroom (all four):
    # C = 1 - sum(t^3 - t) / (N k (k^2 - 1))
    correction = 1 - (6 + 6 + 6 + 60) / (14 * 4 * 15)
    assert fr.chi2 == pytest.approx(fr.chi2_uncorrected / correction)
    f, p = iman_davenport(fr.chi2, 14, 4)
    assert (fr.f_statistic, fr.p_f) == pytest.approx((f, stats.f.sf(f, 3, 39)))


@pytest.mark.parametrize("k, q", [(2, 1.960), (3, 2.343), (4, 2.569), (5, 2.728), (6, 2.850), (10, 3.164)])
def test_nemenyi_q_matches_table_5a(k, q):
    assert nemenyi_q(k, 0.05) == pytest.approx(q, abs=1e-3)


def test_critical_difference_of_the_paper():
    assert critical_difference(4, 14, 0.05) == pytest.approx(1.25, abs=0.005)
    assert nemenyi_q(4, 0.10) == pytest.approx(2.291, abs=1e-3)
    assert critical_difference(4, 14, 0.10) == pytest.approx(1.12, abs=0.005)


def test_nemenyi_matches_scikit_posthocs_and_the_papers_conclusions():
    scores = paper_scores()
    p = nemenyi_test(scores)
    expected = sp.posthoc_nemenyi_friedman(scores.to_numpy())
    assert p.to_numpy() == pytest.approx(expected.to_numpy())
    assert list(p.index) == MODELS
    assert (p.to_numpy() >= 0.05).all()  # alpha 0.05: even best vs worst is within CD
    significant = {frozenset((a, b)) for a in MODELS for b in MODELS if a < b and p.loc[a, b] < 0.10}
    assert significant == {frozenset(("C4.5", "C4.5+m")), frozenset(("C4.5", "C4.5+m+cf"))}
    # and the p-values agree with the CD rule: p < alpha iff |rank difference| > CD
    ranks = average_ranks(scores)
    for alpha in (0.05, 0.10):
        cd = critical_difference(4, 14, alpha)
        for a in MODELS:
            for b in MODELS:
                if a != b:
                    assert (p.loc[a, b] < alpha) == (abs(ranks[a] - ranks[b]) > cd)


def tidy(scores: pd.DataFrame, metric: str = "auc") -> pd.DataFrame:
    """Return a tidy table with two seeds per cell whose mean is the score."""
    rows = []
    for d in scores.index:
        for m in scores.columns:
            for seed, jitter in enumerate((-0.001, 0.001)):
                rows.append(
                    dict(
                        dataset=d,
                        model=m,
                        backbone=m,
                        attention="none",
                        is_baseline=False,
                        seed=seed,
                        split="test",
                        metric=metric,
                        value=scores.loc[d, m] + jitter,
                    )
                )
    return pd.DataFrame(rows)


def test_from_the_tidy_table():
    scores = paper_scores()
    res = compare_across_datasets(tidy(scores), metric="auc", alpha=0.05)
    assert res.scores.loc[DATASETS, MODELS].to_numpy() == pytest.approx(scores.to_numpy())
    assert res.average_ranks[MODELS].round(3).tolist() == [3.143, 2.000, 2.893, 1.964]
    assert res.critical_difference == pytest.approx(1.25, abs=0.005)
    assert res.friedman.chi2_uncorrected == pytest.approx(9.28, abs=0.005)


def test_lower_is_better_metric_reverses_ranks():
    ece = tidy(paper_scores(), metric="ece")
    res = compare_across_datasets(ece, metric="ece")
    assert res.average_ranks["C4.5"] == pytest.approx(5 - 3.143, abs=1e-3)


def test_incomplete_or_too_small_input_raises():
    t = tidy(paper_scores())
    with pytest.raises(DataError, match="every model on every dataset"):
        score_matrix(t[~((t["model"] == "C4.5") & (t["dataset"] == "iris"))], metric="auc")
    with pytest.raises(DataError, match=">= 3 models"):
        friedman_test(paper_scores()[MODELS[:2]])
