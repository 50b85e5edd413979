"""Verdicts that never overclaim (issue 8): degenerate differences, non-finite scores, the MDD at the Holm
level, wording that matches the test, significant-but-negligible differences, rounding at the cut-offs,
the best baseline chosen on validation, Wilcoxon with few seeds, both Friedman forms, the stratified
bootstrap; and simulated studies under the null and at the ROPE edge.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.power import TTestPower

from medattn.cli import main
from medattn.errors import DataError
from medattn.stats import compare_models, friedman_test, paired_bootstrap, paired_difference, validate_results
from medattn.stats.bayes import rope_probabilities
from medattn.stats.verdict import decide, describe_comparison

ALPHA = 0.05


def tidy(values: dict[tuple[str, str], np.ndarray], *, baselines: tuple[str, ...] = ()) -> pd.DataFrame:
    """Return a tidy table from {(model, split): values per seed (studies x seeds)}; one dataset per study."""
    frames = []
    for (model, split), v in values.items():
        v = np.atleast_2d(v)
        studies, seeds = v.shape
        backbone, _, attention = model.partition("+")
        frames.append(pd.DataFrame(dict(
            dataset=np.repeat([f"study{i}" for i in range(studies)], seeds),
            model=model, backbone=backbone, attention=attention or "none", is_baseline=model in baselines,
            seed=np.tile(np.arange(seeds), studies), split=split, metric="balanced_accuracy", value=v.ravel())))
    return pd.concat(frames, ignore_index=True)


def row_dict(**changes) -> dict:
    """Return a comparison-table row (the issue's +1.6 pp example) with ``changes`` applied."""
    row = dict(dataset="isic", model="resnet18+se", reference="resnet18", metric="balanced_accuracy", n=5,
               mean_diff=0.016, sd_diff=0.0097, ci_low=0.004, ci_high=0.028, p_t=0.016, p_holm=0.08,
               p_worse=0.0, p_equiv=0.11, p_better=0.89, mdd=0.02, holm_family_size=5, alpha=0.05,
               power=0.8, confidence=0.95, equiv_prob=0.95, rope=0.01, verdict="no evidence")
    row.update(changes)
    return row


# 1. constant differences are not evidence
def test_constant_differences_give_the_sign_flip_p_no_posterior_and_no_evidence():
    ref = np.array([[0.80, 0.82]])
    table = compare_models(tidy({("resnet18", "test"): ref, ("resnet18+se", "test"): ref + 0.001}))
    row = table.iloc[0]
    assert row.p_t == pytest.approx(0.5)  # exact sign-flip p: 2 / 2^2
    assert np.isnan(row.p_equiv) and np.isnan(row.p_better) and np.isnan(row.p_worse)
    assert row.verdict == "no evidence"
    sentence = describe_comparison(row)
    assert "significant gain" not in sentence and "P(equivalent) = 1.00" not in sentence
    assert "all 2 differences are equal" in sentence
    six = paired_difference(np.full(6, 0.801), np.full(6, 0.8))
    assert six.p_t == pytest.approx(2 / 2**6) and np.isnan(six.t) and np.isnan(six.ci_low)
    assert all(np.isnan(rope_probabilities(np.full(5, 0.001))))


# 2. non-finite scores are refused
def test_infinite_score_is_refused_naming_run_split_and_metric(tmp_path: Path, monkeypatch, capsys):
    ref = np.array([[0.80, 0.82, 0.81]])
    bad = tidy({("resnet18", "test"): ref, ("resnet18+se", "test"): ref + np.array([[0.01, np.inf, 0.0]])})
    with pytest.raises(DataError, match=r"dataset 'study0', model 'resnet18\+se', seed 1, split 'test', "
                                        r"metric 'balanced_accuracy'"):
        validate_results(bad)
    bad.to_csv(tmp_path / "results.csv", index=False)
    monkeypatch.setattr(sys, "argv", ["medattn", "report", str(tmp_path)])  # the console script's entry point
    with pytest.raises(SystemExit) as done:
        main()
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.count("\n") == 1
    assert "results.csv: results table: dataset 'study0', model 'resnet18+se', seed 1, split 'test'" in err


# 3. the MDD is computed at the Holm level the comparison faced
def test_mdd_uses_the_holm_family_level_and_says_so():
    rng = np.random.default_rng(3)
    ref = 0.8 + rng.normal(0, 0.01, (1, 5))
    values = {("resnet18", "test"): ref}
    for name in ("se", "cbam", "eca"):
        values[(f"resnet18+{name}", "test")] = ref + rng.normal(0, 0.03, (1, 5))
    table = compare_models(tidy(values))
    assert (table["verdict"] == "no evidence").sum() >= 2
    for _, row in table.iterrows():
        es = TTestPower().solve_power(effect_size=None, nobs=5, alpha=ALPHA / 3, power=0.8)
        assert row.mdd == pytest.approx(es * row.sd_diff)
        assert row.holm_family_size == 3 and row.alpha == ALPHA
        sentence = describe_comparison(row)
        if row.verdict == "no evidence":
            assert "80% power at alpha/3 = 0.0167 (Holm's first step)" in sentence and "observed spread" in sentence


# 4. the wording says what the test said
def test_not_significant_after_holm_is_worded_as_such_with_p_better_and_an_unadjusted_interval():
    sentence = describe_comparison(row_dict())
    assert "no evidence" not in sentence
    assert "not significant after Holm correction (inconclusive" in sentence
    assert "P(better) = 0.89" in sentence
    assert "unadjusted 95% CI [+0.4, +2.8]" in sentence
    loss = describe_comparison(row_dict(mean_diff=-0.016, ci_low=-0.028, ci_high=-0.004, p_worse=0.89,
                                        p_better=0.0))
    assert "P(worse) = 0.89" in loss


# 5. significant but negligible
def test_significant_difference_inside_the_rope_is_negligible():
    assert decide(0.001, 0.0025, 0.0, 1.0, 0.0) == "significant but negligible gain"
    assert decide(0.001, -0.0025, 0.0, 1.0, 0.0) == "significant but negligible loss"
    assert decide(0.001, 0.03, 0.0, 0.0, 1.0) == "significant gain"
    assert decide(0.001, 0.015, 0.0, 0.3, 0.7) == "significant gain of unclear size"
    sentence = describe_comparison(row_dict(mean_diff=0.0025, ci_low=0.002, ci_high=0.003, p_holm=0.0001,
                                            p_equiv=1.0, p_better=0.0, verdict="significant but negligible gain"))
    assert sentence.endswith("significant but negligible gain (inside the ROPE of +-1.0 pp)")


def test_true_difference_at_the_rope_edge_is_rarely_a_plain_significant_gain():
    # 2000 studies (Holm within each), 5 seeds, true difference +1 pp = the ROPE edge, sd of the differences
    # 0.5 pp: nearly all significant; the plain verdict needs P(better) >= 0.95, i.e. a one-sided 95 % bound
    # above the ROPE, which a true difference at the edge passes in about 5 % of studies.
    rng = np.random.default_rng(11)
    ref = 0.8 + rng.normal(0, 0.01, (2000, 5))
    table = compare_models(tidy({("resnet18", "test"): ref,
                                 ("resnet18+se", "test"): ref + 0.01 + rng.normal(0, 0.005, ref.shape)}),
                           holm_by=("dataset", "metric"))
    plain = np.mean(table["verdict"] == "significant gain")
    negligible_or_unclear = np.mean(table["verdict"].isin(["significant but negligible gain",
                                                           "significant gain of unclear size"]))
    assert plain <= 0.10
    assert negligible_or_unclear > 0.5  # the difference is significant, its size is not established


# 6. rounding never crosses a threshold
def test_rounding_never_crosses_alpha_or_the_equivalence_threshold():
    significant = describe_comparison(row_dict(p_holm=0.0496, verdict="significant gain of unclear size"))
    assert "Holm p = 0.0496" in significant
    not_equivalent = describe_comparison(row_dict(p_holm=0.4, p_equiv=0.9496, p_better=0.03))
    assert "P(equivalent) = 0.9496" in not_equivalent
    assert "Holm p = 0.40" in not_equivalent


# 7. the reference baseline is chosen on validation, not test
def test_best_baseline_null_simulation_keeps_losses_at_the_nominal_rate():
    # 2000 null studies: one CNN and three equally good baselines, 5 seeds; validation and test noise
    # are independent. Picking the best baseline on test made 'significant loss' 6.4 % (nominal 2.5 %).
    sims, seeds = 2000, 5
    rng = np.random.default_rng(21)
    values, baselines = {}, ("vit", "swin", "deit")
    shared = rng.normal(0, 0.01, (sims, seeds))
    for model in ("resnet18", *baselines):
        for split in ("val", "test"):
            values[(model, split)] = 0.8 + shared + rng.normal(0, 0.01, (sims, seeds))
    table = compare_models(tidy(values, baselines=baselines), holm_by=("dataset", "metric"))
    assert len(table) == sims and (table["kind"] == "vs_best_baseline").all()
    significant = table["verdict"].str.startswith("significant")
    loss = table["verdict"].str.contains("loss")
    assert loss.mean() <= ALPHA / 2 + 3 * np.sqrt(ALPHA / 2 * (1 - ALPHA / 2) / sims)
    assert significant.mean() <= ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / sims)


# 8. Wilcoxon with few seeds
def test_wilcoxon_minimum_attainable_p_is_reported():
    res = paired_difference([0.81, 0.83, 0.82, 0.84, 0.80], [0.80, 0.80, 0.80, 0.80, 0.79])
    assert res.p_wilcoxon_min == pytest.approx(2 / 2**5)
    assert res.p_wilcoxon >= res.p_wilcoxon_min


# 9. Friedman: an all-tied table
def test_friedman_all_tied_gives_chi2_zero_and_p_one():
    scores = pd.DataFrame(np.full((4, 3), 0.8), columns=["a", "b", "c"])
    fr = friedman_test(scores)
    assert (fr.chi2, fr.p_value, fr.chi2_uncorrected, fr.p_uncorrected) == (0.0, 1.0, 0.0, 1.0)
    assert fr.f_statistic == 0.0 and fr.p_f == 1.0


# 10. stratified bootstrap
def test_bootstrap_resamples_within_each_class():
    # 48 samples of class 0, 2 of class 1: the model is right on class 0 only (balanced accuracy 0.5),
    # the reference is always wrong (0.0). Within-class resampling keeps every class: the difference is 0.5
    # in every resample; resampling the pooled test set drops class 1 in ~13 % of resamples (then 1.0).
    labels = np.r_[np.zeros(48, int), np.ones(2, int)]

    def table(pred):
        probs = np.eye(2)[pred]
        return pd.DataFrame({"index": np.arange(50), "label": labels, "prob_0": probs[:, 0], "prob_1": probs[:, 1]})

    res = paired_bootstrap(table(np.zeros(50, int)), table(1 - labels), n_boot=500, seed=1)
    assert res.observed == pytest.approx(0.5)
    assert np.allclose(res.samples, 0.5) and (res.ci_low, res.ci_high) == pytest.approx((0.5, 0.5))
