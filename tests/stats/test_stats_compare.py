"""The comparison table: pairs, numbers equal to the libraries, verdicts, sentences, and simulated studies."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from medattn.errors import DataError
from medattn.stats.compare import COMPARISON_COLUMNS, best_baselines, compare_models, comparison_pairs
from medattn.stats.summary import summarize
from medattn.stats.verdict import VERDICTS, decide, describe_comparison, describe_comparisons

# (model, backbone, attention, is_baseline)
MODELS = [
    ("resnet18", "resnet18", "none", False),
    ("resnet18+se", "resnet18", "se", False),
    ("resnet18+cbam", "resnet18", "cbam", False),
    ("effnet_b0", "effnet_b0", "none", False),
    ("effnet_b0+se", "effnet_b0", "se", False),
    ("vit_small", "vit_small", "none", True),
    ("swin_tiny", "swin_tiny", "none", True),
]


def simulate(
    effects: dict[str, float],
    *,
    n_studies: int = 1,
    n_seeds: int = 5,
    models=MODELS,
    seed: int = 0,
    metric: str = "balanced_accuracy",
    seed_sd: float = 0.01,
    noise_sd: float = 0.01,
) -> pd.DataFrame:
    """Return a tidy table: value = 0.75 + effect[model] + shared seed effect + own noise."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(0, seed_sd, size=(n_studies, n_seeds))
    ds = np.repeat([f"study{i}" for i in range(n_studies)], n_seeds)
    seeds = np.tile(np.arange(n_seeds), n_studies)
    frames = []
    for name, backbone, attention, baseline in models:
        value = 0.75 + effects.get(name, 0.0) + shared + rng.normal(0, noise_sd, size=(n_studies, n_seeds))
        frames.append(
            pd.DataFrame(
                dict(
                    dataset=ds,
                    model=name,
                    backbone=backbone,
                    attention=attention,
                    is_baseline=baseline,
                    seed=seeds,
                    split="test",
                    metric=metric,
                    value=value.ravel(),
                )
            )
        )
    return pd.concat(frames, ignore_index=True)


def study() -> pd.DataFrame:
    """Two datasets, balanced accuracy and ECE, a test and a val split, seven models."""
    frames = []
    for i, dataset in enumerate(["isic", "camelyon"]):
        for metric, effects, noise in [
            ("balanced_accuracy", {"resnet18+se": 0.02, "swin_tiny": 0.01 * i, "vit_small": -0.01}, 0.01),
            ("ece", {"resnet18+se": -0.05}, 0.005),
        ]:
            t = simulate(effects, seed=10 * i + len(metric), metric=metric, noise_sd=noise)
            frames.append(t.assign(dataset=dataset))
            frames.append(t.assign(dataset=dataset, split="val", value=t["value"] + 0.01))
    return pd.concat(frames, ignore_index=True)


def test_pairs_and_best_baseline():
    results = study()
    best = best_baselines(results)
    for dataset in ("isic", "camelyon"):
        sub = results[
            (results.dataset == dataset)
            & (results.split == "test")
            & results.is_baseline
            & (results.metric == "balanced_accuracy")
        ]
        assert best[dataset] == sub.groupby("model")["value"].mean().idxmax()
    pairs = comparison_pairs(results)
    isic = pairs[pairs.dataset == "isic"]
    attn = isic[isic.kind == "attention_vs_plain"].set_index("model")["reference"].to_dict()
    assert attn == {"resnet18+se": "resnet18", "resnet18+cbam": "resnet18", "effnet_b0+se": "effnet_b0"}
    vs_base = isic[isic.kind == "vs_best_baseline"]
    assert set(vs_base.model) == {"resnet18", "resnet18+se", "resnet18+cbam", "effnet_b0", "effnet_b0+se"}
    assert set(vs_base.reference) == {best["isic"]}


def test_numbers_equal_the_libraries():
    results = study()
    table = compare_models(results)
    assert list(table.columns) == list(COMPARISON_COLUMNS)
    assert len(table) == 2 * 2 * 8  # datasets x metrics x (3 attention + 5 vs baseline)
    test = results[results.split == "test"]
    for _, row in table.sample(6, random_state=0).iterrows():
        cell = test[(test.dataset == row.dataset) & (test.metric == row.metric)]
        a = cell[cell.model == row.model].sort_values("seed")["value"].to_numpy()
        b = cell[cell.model == row.reference].sort_values("seed")["value"].to_numpy()
        tt = stats.ttest_rel(a, b)
        ci = tt.confidence_interval()
        w = stats.wilcoxon(a - b)
        assert (row.t, row.p_t, row.ci_low, row.ci_high) == pytest.approx(
            (tt.statistic, tt.pvalue, ci.low, ci.high)
        )
        assert (row.wilcoxon_stat, row.p_wilcoxon) == pytest.approx((w.statistic, w.pvalue))
        assert row.effect_size == pytest.approx(np.mean(a - b) / np.std(a - b, ddof=1))
        assert row.holm_family_size == 16  # Holm within each metric: 2 datasets x 8 comparisons
        mdd = TTestPower().solve_power(effect_size=None, nobs=5, alpha=0.05 / 16, power=0.8) * np.std(
            a - b, ddof=1
        )
        assert row.mdd == pytest.approx(mdd)
    for _, fam in table.groupby("metric"):
        assert fam["p_holm"].to_numpy() == pytest.approx(multipletests(fam["p_t"], method="holm")[1])
    whole = compare_models(results, holm_by=())
    assert whole["p_holm"].to_numpy() == pytest.approx(multipletests(whole["p_t"], method="holm")[1])


def test_lower_is_better_metric_is_oriented():
    table = compare_models(study(), metrics=["ece"])
    row = table[
        (table.dataset == "isic") & (table.model == "resnet18+se") & (table.kind == "attention_vs_plain")
    ].iloc[0]
    assert row.mean_diff < 0
    assert row.p_better > 0.9 and row.p_worse < 0.05
    assert row.verdict == "significant gain"
    assert "lower ece is better" in describe_comparison(row)


def test_split_and_unpaired_seeds():
    results = study()
    val = compare_models(results, split="val", metrics=["balanced_accuracy"])
    assert (val["split"] == "val").all()
    drop = (results.model == "resnet18+cbam") & (results.seed == 4)
    table = compare_models(results[~drop], metrics=["balanced_accuracy"])
    n = table.set_index(["dataset", "model", "reference"])["n"]
    assert n[("isic", "resnet18+cbam", "resnet18")] == 4
    assert n[("isic", "resnet18+se", "resnet18")] == 5


def test_bad_tables_raise_user_errors():
    results = study()
    with pytest.raises(DataError, match="lacks column"):
        compare_models(results.drop(columns=["seed"]))
    with pytest.raises(DataError, match="one row per run"):
        compare_models(pd.concat([results, results.iloc[:1]]))
    with pytest.raises(DataError, match="not in the results"):
        compare_models(results, metrics=["auc"])
    with pytest.raises(DataError, match="split"):
        compare_models(results, split="test_ood")
    with pytest.raises(DataError, match="no entry for metric"):
        compare_models(results, rope={"balanced_accuracy": 0.01})
    with pytest.warns(UserWarning, match="best baseline"):
        compare_models(results[results.metric == "ece"])
    with pytest.warns(UserWarning, match="no plain model"):
        pairs = comparison_pairs(results[results.model != "effnet_b0"])
    assert "effnet_b0+se" not in set(pairs[pairs.kind == "attention_vs_plain"].model)
    with pytest.warns(UserWarning, match="'camelyon'.*plain backbone 'effnet_b0'"):
        pairs = comparison_pairs(results[(results.model != "effnet_b0") | (results.dataset == "isic")])
    assert set(pairs[pairs.model == "effnet_b0+se"].dataset) == {
        "isic",
        "camelyon",
    }  # camelyon: vs baseline only


def test_rope_per_metric():
    table = compare_models(study(), rope={"balanced_accuracy": 0.02, "ece": 0.005})
    assert set(zip(table.metric, table.rope, strict=True)) == {("balanced_accuracy", 0.02), ("ece", 0.005)}


def test_verdict_rules():
    # decide(p_holm, improvement, p_worse, p_equiv, p_better)
    assert decide(0.01, +0.02, 0.0, 0.03, 0.97) == "significant gain"
    assert decide(0.01, -0.02, 0.97, 0.03, 0.0) == "significant loss"
    assert decide(0.30, +0.001, 0.01, 0.97, 0.02) == "practically equivalent"
    assert decide(0.30, +0.01, 0.0, 0.60, 0.40) == "no evidence"
    assert decide(np.nan, np.nan, np.nan, np.nan, np.nan) == "no evidence"
    assert decide(0.04, 0.01, 0.0, 0.5, 0.5, alpha=0.01) == "no evidence"
    assert decide(0.001, 0.02, np.nan, np.nan, np.nan) == "significant gain of unclear size"


def test_sentence():
    row = dict(
        dataset="isic",
        model="resnet18+cbam",
        reference="resnet18",
        metric="balanced_accuracy",
        n=5,
        mean_diff=0.004,
        ci_low=-0.011,
        ci_high=0.019,
        sd_diff=0.012,
        p_holm=0.62,
        p_worse=0.01,
        p_equiv=0.71,
        p_better=0.28,
        mdd=0.023,
        holm_family_size=2,
        alpha=0.05,
        power=0.8,
        confidence=0.95,
        equiv_prob=0.95,
        rope=0.01,
        verdict="no evidence",
    )
    assert describe_comparison(row) == (
        "resnet18+cbam vs resnet18 (isic, balanced_accuracy): +0.4 pp, unadjusted 95% CI [-1.1, +1.9], "
        "Holm p = 0.62, P(better) = 0.28, P(equivalent) = 0.71: not significant after Holm correction "
        "(inconclusive; the smallest difference detectable with 80% power at alpha/2 = 0.025 (Holm's first step) "
        "is 2.3 pp, given 5 seeds and their observed spread)"
    )
    row.update(
        mean_diff=0.031, ci_low=0.02, ci_high=0.042, p_holm=0.0004, p_equiv=0.0, p_better=1.0,
        verdict="significant gain",
    )
    assert describe_comparison(row).endswith(
        "+3.1 pp, unadjusted 95% CI [+2.0, +4.2], Holm p < 0.001, P(better) = 1.00, P(equivalent) = 0.00: "
        "significant gain"
    )
    assert len(describe_comparisons(compare_models(study()))) == 32


def test_summary_means_and_costs():
    results = study().assign(params=lambda d: d["model"].str.len() * 1e6)
    s = summarize(results)
    cell = results[
        (results.dataset == "isic")
        & (results.model == "resnet18+se")
        & (results.split == "test")
        & (results.metric == "balanced_accuracy")
    ]["value"]
    row = s[(s.dataset == "isic") & (s.model == "resnet18+se") & (s.metric == "balanced_accuracy")].iloc[0]
    assert (row.n, row["mean"], row["std"]) == pytest.approx((5, cell.mean(), cell.std(ddof=1)))
    assert row.params == pytest.approx(len("resnet18+se") * 1e6)


PAIR = [MODELS[0], MODELS[1]]
TRIPLE = [MODELS[0], MODELS[1], MODELS[2]]


def test_planted_gain_is_reported_as_significant():
    # +3 pp, seed sd 1 pp shared across models plus 1 pp own noise, 10 seeds
    table = compare_models(simulate({"resnet18+se": 0.03}, n_seeds=10, models=TRIPLE, seed=5))
    row = table[table.model == "resnet18+se"].iloc[0]
    assert row.verdict == "significant gain"
    assert row.ci_low < 0.03 < row.ci_high
    other = table[table.model == "resnet18+cbam"].iloc[0]
    assert other.verdict != "significant gain"


def test_planted_gain_detected_at_the_analytic_power():
    # 600 studies, 5 seeds: the fraction reported as a significant gain (of any size) matches the t test's power
    sims = 600
    table = compare_models(
        simulate({"resnet18+se": 0.03}, n_studies=sims, models=PAIR, seed=6), holm_by=("dataset", "metric")
    )
    rate = np.mean(table["verdict"].isin(["significant gain", "significant gain of unclear size",
                                          "significant but negligible gain"]))
    power = TTestPower().power(effect_size=0.03 / np.sqrt(2 * 0.01**2), nobs=5, alpha=0.05)
    assert abs(rate - power) <= 3 * np.sqrt(power * (1 - power) / sims)


def test_null_studies_report_gains_at_most_at_the_nominal_rate():
    # 1000 null studies, two attention variants each, Holm within the study: family-wise error <= 5%
    sims = 1000
    table = compare_models(simulate({}, n_studies=sims, models=TRIPLE, seed=8), holm_by=("dataset", "metric"))
    assert len(table) == 2 * sims
    se = np.sqrt(0.05 * 0.95 / sims)
    any_gain = table.groupby("dataset")["verdict"].apply(lambda v: (v == "significant gain").any()).mean()
    any_significant = (
        table.groupby("dataset")["verdict"].apply(lambda v: v.str.startswith("significant").any()).mean()
    )
    assert any_gain <= 0.05 + 3 * se
    assert any_significant <= 0.05 + 3 * se
    # the unadjusted t test is calibrated: 5% of single comparisons reject (one per study: independent)
    one = table[table["model"] == "resnet18+se"]
    assert abs(np.mean(one["p_t"] < 0.05) - 0.05) <= 3 * np.sqrt(0.05 * 0.95 / len(one))
    assert set(table["verdict"]) <= set(VERDICTS)
