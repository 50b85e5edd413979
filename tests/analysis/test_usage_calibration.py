"""The usage statistics mean what they say, by simulation against planted truths (cheap versions of
bench/usage_calibration.py): corrected CMI unbiased under H0, interval coverage, directional test size and power,
a family's planted effect reachable at corrected p < 0.01, untestable and derived features outside the family."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from statsmodels.stats.contingency_tables import StratifiedTable
from statsmodels.stats.multitest import multipletests

from medattn.analysis import usage
from medattn.analysis.citest import asymptotic_pvalue, contingency, mantel_test, usage_test

SIMS = 400


def _binary_world(rng: np.random.Generator, effect: float, n: int = 500):
    """2 labels, a label-dependent binary feature, P(pred = 1) shifted by `effect` log-odds with the feature."""
    z = (rng.random(n) < 0.4).astype(int)
    f = (rng.random(n) < np.where(z == 1, 0.6, 0.3)).astype(int)
    logit = np.where(z == 1, 1.0, -1.2) + effect * f
    x = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, f, z


def _true_cmi_bits(effect: float) -> float:
    """The exact I(pred; feature | label) of `_binary_world`."""
    total = 0.0
    for pz, pf1, base in ((0.6, 0.3, -1.2), (0.4, 0.6, 1.0)):
        p1 = 1 / (1 + np.exp(-(base + effect * np.array([0.0, 1.0]))))
        pf = np.array([1 - pf1, pf1])
        marginal = (pf * p1).sum()
        for k in range(2):
            for p, m in ((p1[k], marginal), (1 - p1[k], 1 - marginal)):
                total += pz * pf[k] * p * np.log2(p / m)
    return total


@pytest.fixture(scope="module")
def null_and_planted():
    """SIMS seeded usage tests at CMI 0 and at effect 0.8 (true CMI about 0.02 bits)."""
    out = {}
    for effect in (0.0, 0.8):
        rng = np.random.default_rng(int(effect * 10) + 1)
        out[effect] = [usage_test(*_binary_world(rng, effect), permutations=100, seed=s) for s in range(SIMS)]
    return out


def test_corrected_cmi_has_mean_zero_under_h0_and_is_not_clipped(null_and_planted):
    corrected = np.array([r.cmi_corrected_bits for r in null_and_planted[0.0]])
    plug_in = np.array([r.cmi_bits for r in null_and_planted[0.0]])
    se = corrected.std(ddof=1) / np.sqrt(SIMS)
    assert abs(corrected.mean()) < 2 * se  # unbiased: within 2 Monte Carlo SE of 0
    assert (corrected < 0).mean() > 0.3  # negative values are kept (a clipped estimate is biased upwards)
    assert plug_in.mean() > 10 * se  # while the plug-in CMI is biased upwards, about df / (2 N ln 2)


def test_cmi_interval_covers_zero_and_a_planted_value(null_and_planted):
    """Target 0.95 (0.965 at 0 by construction); 400 simulations give an MC SE of about 0.011."""
    for effect, results in null_and_planted.items():
        truth = _true_cmi_bits(effect)
        coverage = np.mean([r.cmi_low <= truth <= r.cmi_high for r in results])
        assert 0.92 <= coverage <= 0.985, (effect, truth, coverage)
    planted = null_and_planted[0.8]
    assert 0.015 < _true_cmi_bits(0.8) < 0.025
    assert np.mean([r.cmi_low <= r.cmi_corrected_bits <= r.cmi_high for r in planted]) > 0.9


def test_mantel_test_is_statsmodels_cmh_and_the_odds_ratio_its_pooled_one():
    rng = np.random.default_rng(3)
    x, f, z = _binary_world(rng, 0.6, 800)
    counts = contingency(x, f, z, 2, 2, 2)
    ref = StratifiedTable([t[::-1, ::-1].astype(float) for t in counts])  # rows pred 1/0, columns feature 1/0
    statistic, p, sign = mantel_test(counts, np.array([0, 1]), np.array([0, 1]))
    assert statistic == pytest.approx(ref.test_null_odds(correction=False).statistic)
    assert p == pytest.approx(ref.test_null_odds(correction=False).pvalue) and sign == 1
    result = usage_test(x, f, z, permutations=50, positive=1)
    assert result.direction == 1 and result.common_odds_ratio == pytest.approx(ref.oddsratio_pooled)
    flipped = usage_test(x, 1 - f, z, permutations=50, positive=1)  # the other level raises P(pred = 1): sign flips
    assert flipped.direction == -1 and flipped.common_odds_ratio == pytest.approx(1 / ref.oddsratio_pooled)


def test_directional_test_size_and_power_against_the_omnibus_one():
    """7 labels, 7 predicted classes, a 10 % binary feature, n = 750, 2000 tables each: size in [0.03, 0.07];
    at log-odds 0.5 on P(pred = 6) the 1-df test has more power than the all-directions G-test (whose chi-square
    p is conservative on these sparse tables, 0.024 at H0; bench/usage_calibration.py gives its permutation
    path: size 0.050, power 0.089 vs 0.243)."""
    rng = np.random.default_rng(4)
    sims, n, k = 2000, 750, 7
    z = rng.choice(k, (sims, n), p=[0.3, 0.2, 0.15, 0.12, 0.1, 0.08, 0.05])
    f = (rng.random((sims, n)) < 0.1).astype(int)
    rates = {}
    for effect in (0.0, 0.5):
        p6 = 1 / (1 + np.exp(-(np.log(0.05 / 0.95) + np.where(z == 6, 3.0, 0.0) + effect * f)))
        other = np.where(rng.random((sims, n)) < 0.7, z, rng.integers(0, 6, (sims, n)))
        x = np.where(rng.random((sims, n)) < p6, 6, np.minimum(other, 5))
        counts = contingency(x, f, z, k, 2, k)
        _, p, sign = mantel_test(counts, np.arange(k) == 6, np.arange(2))
        rates[effect] = ((p < 0.05).mean(), (asymptotic_pvalue(counts) < 0.05).mean(), (sign[p < 0.05] > 0).mean())
    assert 0.03 <= rates[0.0][0] <= 0.07, rates
    assert rates[0.5][0] > rates[0.5][1] + 0.1 and rates[0.5][2] > 0.99, rates


def test_planted_effect_among_13_features_and_7_classes_is_flagged_at_corrected_001():
    """Sparse tables (n = 350, 7 classes) send every feature to the permutation path; with up to 20 m / alpha
    permutations the planted feature's Holm p reaches 13 / 5201 < 0.01 (999 permutations could not: 0.013)."""
    rng = np.random.default_rng(5)
    n = 350
    label = rng.integers(0, 7, n)
    features = pd.DataFrame({f"f{i}": rng.integers(0, 4, n) for i in range(12)})
    features.insert(0, "planted", rng.integers(0, 4, n))
    prediction = np.where(rng.random(n) < 0.5, label, np.minimum(features["planted"] + 3, 6))
    table = usage.test_features(prediction, label, features, usage.UsageOptions(alpha=0.05), seed=0)
    assert (table["method"] == "permutation").all() and (table["family_size"] == 13).all()
    planted = table.iloc[0]
    assert planted["p_adjusted"] < 0.01 and planted["permutations"] == 5200
    assert (table["p_adjusted"].iloc[1:] > 0.05).mean() > 0.8


def test_untestable_and_derived_features_leave_the_family_and_are_listed():
    rng = np.random.default_rng(6)
    label = rng.integers(0, 2, 300)
    features = pd.DataFrame({"a": rng.integers(0, 2, 300), "b": rng.integers(0, 2, 300),
                             "copy_of_label": label, "score": rng.integers(0, 5, 300)})
    prediction = rng.integers(0, 2, 300)
    opts = usage.UsageOptions(permutations=50)
    table = usage.test_features(prediction, label, features, opts, seed=0, derived=("score",)).set_index("feature")
    assert table.loc["copy_of_label", "excluded"] == "untestable" and table.loc["score", "excluded"] == "derived"
    assert table[["p_adjusted"]].loc[["copy_of_label", "score"]].isna().all().all()
    assert (table["family_size"] == 2).all()
    family = table.loc[["a", "b"]]
    assert family["p_adjusted"].to_numpy() == pytest.approx(multipletests(family["pvalue"], method="holm")[1])
    opts = usage.UsageOptions(permutations=50, include_derived=True)
    included = usage.test_features(prediction, label, features, opts, seed=0, derived=("score",))
    assert (included["family_size"] == 3).all()


def test_single_label_group_is_counted():
    """A feature that varies only among label-1 images (every label-0 case has level 0) is tested in one group."""
    rng = np.random.default_rng(7)
    label = rng.integers(0, 2, 300)
    feature = np.where(label == 0, 0, rng.integers(0, 2, 300))
    assert usage_test(rng.integers(0, 2, 300), feature, label, permutations=50).label_groups == 1


def test_gcm_on_probabilities_holds_its_size_finds_a_planted_shift_and_matches_a_hand_computation():
    """2000 tables, 3 labels, n = 400, a label-dependent binary feature: size in [0.03, 0.07]; a shift of 0.3
    log-odds of P(positive) with the feature is found with positive sign; one stratum equals the formula."""
    from medattn.analysis.citest import gcm_test

    rng = np.random.default_rng(8)
    z = rng.integers(0, 3, (2000, 400))
    f = (rng.random(z.shape) < np.where(z == 1, 0.7, 0.3)).astype(int)
    noise = rng.normal(size=z.shape)
    _, p0 = gcm_test(1 / (1 + np.exp(-(z - 1 + noise))), f, z)
    t1, p1 = gcm_test(1 / (1 + np.exp(-(z - 1 + 0.3 * f + noise))), f, z)
    assert 0.03 <= (p0 < 0.05).mean() <= 0.07 and (p1 < 0.05).mean() > 0.6 and (t1[p1 < 0.05] > 0).all()
    prob, score = rng.random(50), rng.integers(0, 3, 50)
    r = (prob - prob.mean()) * (score - score.mean())
    t, p = gcm_test(prob, score, np.zeros(50, int))
    assert t == pytest.approx(np.sqrt(50) * r.mean() / r.std()) and p == pytest.approx(2 * norm.sf(abs(t)))
