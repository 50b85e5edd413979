"""`medattn scorecard` (analysis/scorecard.py) on hand-made study folders: the truth read from the dataset specs,
each detector's flag by its stated rule, rates with Clopper-Pearson intervals in closed form, the nominal +
2 MC SE check, aggregation over two study folders, and one-line exit-2 errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from medattn.analysis.scorecard import ScorecardOptions, planted, run_flags, scorecard

BASE = "folder:ham10000?labels=meta.csv&label=dx"


def _spec(kind: str, corr: float) -> str:
    return f"{BASE}&shortcut={kind}&shortcut_class=mel&shortcut_corr={corr}"


def _study(root: Path, kind: str, control_usage_p: tuple[float, float, float]) -> Path:
    """3 seeds x 1 model on 'strong' (corr 0.9) and 'control' (0.5). Strong: usage p 0.001, insertion probe
    z = 4.9 (p 1e-6), removal z = 2.35 (p 0.019: outside the 95 % interval's 0, but not below 0.01), gap 0.20,
    gradcam energy above uniform on all 8 images (exact Wilcoxon p = 1/256). Control: usage p as given, probes
    centred on 0 (insertion 0, 0.01, -0.01 by seed), gap 0.01, gradcam energy = uniform +- the same amounts
    (p > 0.5)."""
    res, usage, probes, scores = [], [], [], []
    for ds, corr in (("strong", 0.9), ("control", 0.5)):
        for seed in range(3):
            key = {"dataset": ds, "model": "resnet18", "seed": seed}
            ood = 0.69 if ds == "control" or (kind, seed) == ("ruler", 2) else 0.50  # ruler seed 2: gap 0.01
            res += [{**key, "dataset_spec": _spec(kind, corr), "stage": "final", "split": s,
                     "metric": "balanced_accuracy", "value": v} for s, v in (("test", 0.70), ("test_ood", ood))]
            p = 0.001 if ds == "strong" else control_usage_p[seed]
            # the report's p_adjusted corrects across all 9 features of a run; the scorecard reads the
            # artefact's own p (one question per planted artefact, as for the probes)
            usage += [{**key, "epoch": "best", "feature": kind, "pvalue": p, "p_adjusted": min(1.0, 9 * p)},
                      {**key, "epoch": 2, "feature": kind, "pvalue": 0.001, "p_adjusted": 0.001},  # not kept
                      {**key, "epoch": "best", "feature": "age", "pvalue": 0.001, "p_adjusted": 0.001}]  # not planted
            strong = ds == "strong"
            c = (0.0, 0.01, -0.01)[seed]  # the control's insertion effects
            probes += [{**key, "probe": "insert", "artefact": kind, "delta_positive_prob": 0.05 if strong else c,
                        "delta_positive_prob_low": 0.03 if strong else c - 0.02,
                        "delta_positive_prob_high": 0.07 if strong else c + 0.02},
                       {**key, "probe": "remove", "artefact": kind, "delta_positive_prob": 0.03 if strong else 0.0,
                        "delta_positive_prob_low": 0.005 if strong else -0.02,
                        "delta_positive_prob_high": 0.055 if strong else 0.02},
                       {**key, "probe": "sham", "artefact": kind, "delta_positive_prob": 0.5,
                        "delta_positive_prob_low": 0.4, "delta_positive_prob_high": 0.6}]  # never scored
            up = np.arange(1, 9) / 100
            energy = 0.2 + (up if strong else up * np.array([1, -1] * 4))
            scores += [{**key, "image_id": i, "method": m, "metric": "artefact_energy", "value": v}
                       for m, values in (("uniform", np.full(8, 0.2)), ("gradcam", energy))
                       for i, v in enumerate(values)]
    for name, rows in (("results.csv", res), ("features/usage.csv", usage), ("features/probes.csv", probes),
                       ("explanations/scores.csv", scores)):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(root / name, index=False)
    return root


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> list[Path]:
    """Two study folders (ink, ruler): the ink control has one usage false alarm (seed 1, p 0.004)."""
    return [_study(tmp_path_factory.mktemp("ink"), "ink", (0.5, 0.004, 0.02)),
            _study(tmp_path_factory.mktemp("ruler"), "ruler", (0.3, 0.9, 0.011))]


def test_truth_comes_from_the_dataset_specs():
    assert planted(_spec("ink,ruler", 0.9)) == (0.9, ("ink", "ruler"))
    assert planted("synthetic:derm-synth?n=100&shortcut_corr=0.5&artefacts=ruler,patch") == (0.5, ("ruler", "patch"))
    assert planted("synthetic:derm-synth?n=100") == (0.9, ("patch",))  # derm-synth's defaults
    assert planted(BASE) is None and planted("not a spec ::") is None


def test_each_detector_flags_by_its_rule(studies):
    flags = run_flags(studies[0], ScorecardOptions(alpha=0.01, gap=0.05))
    assert set(flags["artefact"]) == {"ink", "*"}  # 'age' is not planted, the sham arm is not a detector
    by = flags.set_index(["dataset", "seed", "detector"])["flagged"]
    for seed in range(3):
        assert by[("strong", seed, "usage")] and by[("strong", seed, "insert_probe")]
        assert not by[("strong", seed, "remove_probe")]  # 95 % interval excludes 0, p = 0.019 > 0.01
        assert by[("strong", seed, "ood_gap")] and by[("strong", seed, "energy_gradcam")]
        assert not by[("control", seed, "ood_gap")] and not by[("control", seed, "energy_gradcam")]
        assert not by[("control", seed, "insert_probe")]
    assert [by[("control", s, "usage")] for s in range(3)] == [False, True, False]
    p = flags.set_index(["dataset", "seed", "detector"])["p"]
    z = 0.03 / (0.05 / (2 * stats.norm.ppf(0.975)))  # the removal probe's normal reading of its interval
    assert p[("strong", 0, "remove_probe")] == pytest.approx(2 * stats.norm.sf(z), rel=1e-9)
    assert p[("strong", 0, "energy_gradcam")] == pytest.approx(1 / 256, rel=1e-9)
    assert (flags["role"] == np.where(flags["dataset"] == "strong", "shortcut", "control")).all()


def test_scorecard_over_two_studies_rates_intervals_and_nominal_check(studies):
    flags = pd.concat([run_flags(s) for s in studies], ignore_index=True)
    card = scorecard(flags, alpha=0.01).set_index("detector")
    assert card.loc["usage", "detection_runs"] == 6 and card.loc["usage", "detection_flagged"] == 6
    assert card.loc["usage", "false_alarm_flagged"] == 1 and card.loc["usage", "false_alarm_runs"] == 6
    # Clopper-Pearson in closed form: 6/6 -> lower 0.025^(1/6); 1/6 -> lower 1 - 0.975^(1/6); 0/6 -> upper
    assert card.loc["usage", "detection_low"] == pytest.approx(0.025 ** (1 / 6), abs=1e-9)
    assert card.loc["usage", "false_alarm_low"] == pytest.approx(1 - 0.975 ** (1 / 6), abs=1e-9)
    assert card.loc["insert_probe", "false_alarm_high"] == pytest.approx(1 - 0.025 ** (1 / 6), abs=1e-9)
    assert card.loc["remove_probe", "detection_flagged"] == 0
    # among the shortcut runs the ID - OOD gap flags (5 of 6: ruler seed 2's gap is 0.01)
    assert card.loc["ood_gap", "detection_flagged"] == 5
    assert card.loc["usage", "detection_given_gap_runs"] == 5 and card.loc["usage", "detection_given_gap_flagged"] == 5
    assert card.loc["remove_probe", "detection_given_gap_flagged"] == 0
    # nominal 0.01 + 2 sqrt(0.01 * 0.99 / 6) = 0.0912: 1/6 exceeds it, 0/6 does not
    assert card.loc["usage", "false_alarm_bound"] == pytest.approx(0.01 + 2 * np.sqrt(0.0099 / 6))
    assert not card.loc["usage", "false_alarm_ok"] and card.loc["insert_probe", "false_alarm_ok"]
    assert np.isnan(card.loc["ood_gap", "nominal"]) and card.loc["ood_gap", "false_alarm_ok"] is None


def _main(args: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    from medattn.cli import main

    monkeypatch.setattr(sys, "argv", ["medattn", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    out = capsys.readouterr()
    return exited.value.code, out.out, out.err


def test_cli_writes_csvs_and_prints_the_table(studies, tmp_path, capsys, monkeypatch):
    code, out, err = _main(["scorecard", *map(str, studies), "--out", str(tmp_path)], capsys, monkeypatch)
    assert code == 0, err
    assert ("| usage | 6/6 = 1.00 [0.54, 1.00] | 1/6 = 0.17 [0.00, 0.64] | 0.091: EXCEEDED | "
            "5/5 = 1.00 [0.48, 1.00] |") in out
    card = pd.read_csv(tmp_path / "artefact_scorecard.csv")
    assert set(card["detector"]) == {"usage", "insert_probe", "remove_probe", "ood_gap", "energy_gradcam",
                                     "insert_probe_vs_control"}  # removal effects of the controls are all 0
    assert len(pd.read_csv(tmp_path / "artefact_flags.csv")) == 2 * 6 * 6


def test_cli_bad_input_is_one_line_exit_2(studies, tmp_path, capsys, monkeypatch):
    code, _, err = _main(["scorecard", str(tmp_path)], capsys, monkeypatch)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no results.csv" in err
    (tmp_path / "results.csv").write_text("dataset,dataset_spec,model,seed,split,metric,value\n"
                                          f"d,{BASE},m,0,test,balanced_accuracy,0.5\n")
    code, _, err = _main(["scorecard", str(tmp_path)], capsys, monkeypatch)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no dataset plants a known artefact" in err
    (tmp_path / "results.csv").write_text("dataset,dataset_spec,model,seed,split,metric,value\n"
                                          f"d,\"{_spec('ink', 0.9)}\",m,0,test,balanced_accuracy,0.5\n")
    code, _, err = _main(["scorecard", str(tmp_path)], capsys, monkeypatch)  # planted, but nothing measured yet
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no detector output to score" in err


def test_report_section_shows_the_scorecard_per_model(studies, tmp_path):
    from types import SimpleNamespace

    from medattn.report.sections.shortcut_scorecard import scorecard_sections

    ctx = SimpleNamespace(run=SimpleNamespace(run_dir=studies[0]), results=pd.read_csv(studies[0] / "results.csv"))
    [section] = scorecard_sections(ctx)
    table = section.blocks[-1]
    rows = {r[0]: r for r in table.rows}
    assert rows["usage"][1:] == ("3/3 = 1.00 [0.29, 1.00]", "1/3 = 0.33 [0.01, 0.91]", "0.125: exceeded",
                                 "3/3 = 1.00 [0.29, 1.00]")
    assert [s.title for s in section.subsections] == ["Model resnet18"]
    (tmp_path / "results.csv").write_text("dataset,dataset_spec,model,seed,split,metric,value\n"
                                          f"d,{BASE},m,0,test,balanced_accuracy,0.5\n")
    assert scorecard_sections(SimpleNamespace(run=SimpleNamespace(run_dir=tmp_path), results=None)) == []


def test_probe_against_the_controls_is_a_t_prediction_interval(studies):
    """Strong insertion 0.05 vs the controls (0, 0.01, -0.01): t = 0.05 / (0.01 sqrt(4/3)), 2 df, p = 0.0494;
    a control run against the other two (leave-one-out): seed 1, 0.01 vs (0, -0.01): 1 df."""
    flags = run_flags(studies[0], ScorecardOptions(alpha=0.05))
    got = flags[flags["detector"] == "insert_probe_vs_control"].set_index(["dataset", "seed"])
    p_strong = 2 * stats.t.sf(0.05 / (0.01 * np.sqrt(4 / 3)), 2)
    assert got.loc[("strong", 0), "p"] == pytest.approx(p_strong, rel=1e-9) and 0.049 < p_strong < 0.05
    assert got.loc[("strong", 0), "flagged"] and not got.loc[("control", 1), "flagged"]
    ref = np.array([0.0, -0.01])
    t1 = (0.01 - ref.mean()) / (ref.std(ddof=1) * np.sqrt(1.5))
    assert got.loc[("control", 1), "p"] == pytest.approx(2 * stats.t.sf(t1, 1), rel=1e-9)
    assert got.loc[("control", 0), "p"] == pytest.approx(1.0)


def test_answer_table_gives_seed_intervals_and_the_attention_difference_paired_by_seed():
    from medattn.report.sections.shortcut_scorecard import answer_table

    rows = []
    for role, plain, variant in (("shortcut", [0.1, 0.2, 0.3], [0.2, 0.2, 0.5]), ("control", [0.0, 0.0, 0.0],
                                                                               [0.01, 0.03, 0.02])):
        for model, values in (("a", plain), ("a+x", variant)):
            rows += [{"model": model, "seed": s, "role": role, "detector": "insert_probe", "value": v}
                     for s, v in enumerate(values)]
    table = answer_table(pd.DataFrame(rows), {"a+x": "a"})
    # by hand: mean 0.2, sd 0.1, half width t(0.975, 2) 4.3027 x 0.1 / sqrt(3) = 0.2484
    assert table.rows[0] == ("a", "+0.200 [-0.048, +0.448]", "+0.000 [+0.000, +0.000]")
    # a+x - a by seed: 0.1, 0.0, 0.2 at the shortcut (mean 0.1, sd 0.1); 0.01, 0.03, 0.02 at the control
    assert table.rows[2] == ("a+x - a", "+0.100 [-0.148, +0.348]", "+0.020 [-0.005, +0.045]")
    assert table.columns == ("model", "insertion: change of P(positive) at the shortcut",
                            "insertion: change of P(positive) at the control")


def test_usage_is_holm_corrected_across_the_planted_artefacts_of_a_run_only(tmp_path):
    key = {"dataset": "strong", "model": "m", "seed": 0}
    pd.DataFrame([{**key, "dataset_spec": _spec("ink,ruler", 0.9), "split": "test", "metric": "balanced_accuracy",
                   "value": 0.7}]).to_csv(tmp_path / "results.csv", index=False)
    (tmp_path / "features").mkdir()
    pd.DataFrame([{**key, "epoch": "best", "feature": f, "pvalue": p, "p_adjusted": 1.0}
                  for f, p in (("ink", 0.004), ("ruler", 0.006), ("age", 0.5), ("sex", 0.5))]).to_csv(
        tmp_path / "features" / "usage.csv", index=False)
    flags = run_flags(tmp_path, ScorecardOptions(alpha=0.01)).set_index("artefact")
    # Holm over the two planted artefacts only (age and sex are not planted): 0.004 x 2, max(0.006 x 1, 0.008)
    assert flags.loc["ink", "p"] == pytest.approx(0.008) and flags.loc["ruler", "p"] == pytest.approx(0.008)
    assert flags["flagged"].all()  # Holm over all four features: 0.004 x 4 = 0.016, not flagged; raw p: not 0.008
