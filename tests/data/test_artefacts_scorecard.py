"""bench/artefacts_scorecard.py on a hand-made run directory: each detector's flags by its stated rule, and the
rates' exact intervals against the Clopper-Pearson closed form."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "artefacts_scorecard.py"


@pytest.fixture(scope="module")
def card_mod():
    spec = importlib.util.spec_from_file_location("artefacts_scorecard", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run_dir(root: Path) -> Path:
    """3 seeds x 1 model on 'strong' (every detector fires) and 'none' (only seed 2's probe interval misses 0)."""
    res, usage, probes = [], [], []
    for ds in ("strong", "none"):
        for seed in range(3):
            key = {"dataset": ds, "model": "resnet18", "seed": seed}
            ood = 0.50 if ds == "strong" else 0.69 - 0.01 * seed  # gap 0.20 vs 0.01..0.03 (test 0.70)
            res += [{**key, "stage": "final", "split": s, "metric": "balanced_accuracy", "value": v}
                    for s, v in (("test", 0.70), ("test_ood", ood), ("val", 0.7))]
            usage += [{**key, "epoch": "best", "feature": "ink", "p_adjusted": 0.001 if ds == "strong" else 0.5},
                      {**key, "epoch": 2, "feature": "ink", "p_adjusted": 0.001},  # not the kept weights
                      {**key, "epoch": "best", "feature": "age", "p_adjusted": 0.001}]  # another feature
            low = 0.05 if ds == "strong" or seed == 2 else -0.02
            probes += [{**key, "probe": p, "artefact": "ink", "delta_positive_prob": low + 0.03,
                        "delta_positive_prob_low": low, "delta_positive_prob_high": low + 0.06}
                       for p in ("insert", "remove")]
    for name, rows in (("results.csv", res), ("features/usage.csv", usage), ("features/probes.csv", probes)):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(root / name, index=False)
    return root


def test_scorecard_rates_and_exact_intervals(card_mod, tmp_path, capsys):
    run = _run_dir(tmp_path)
    assert card_mod.main([str(run), "--shortcut", "strong", "--control", "none"]) == 0
    card = pd.read_csv(run / "features" / "artefact_scorecard.csv").set_index("detector")
    assert set(card.index) == {"usage", "insert_probe", "remove_probe", "ood_gap"}
    assert (card["detection_flagged"] == 3).all() and (card["detection_runs"] == 3).all()
    assert card.loc["usage", "false_alarm_flagged"] == 0 and card.loc["ood_gap", "false_alarm_flagged"] == 0
    assert card.loc["insert_probe", "false_alarm_flagged"] == 1
    # Clopper-Pearson: 3/3 -> lower 0.025^(1/3); 0/3 -> upper 1 - 0.025^(1/3)
    assert card.loc["usage", "detection_low"] == pytest.approx(0.025 ** (1 / 3), abs=1e-9)
    assert card.loc["usage", "false_alarm_high"] == pytest.approx(1 - 0.025 ** (1 / 3), abs=1e-9)
    assert "| usage | 3/3 = 1.00 [0.29, 1.00] | 0/3 = 0.00 [0.00, 0.71] |" in capsys.readouterr().out


def test_unknown_dataset_is_exit_2(card_mod, tmp_path, capsys):
    run = _run_dir(tmp_path)
    assert card_mod.main([str(run), "--shortcut", "strong", "--control", "nothing"]) == 2
    assert "nothing not in" in capsys.readouterr().err
