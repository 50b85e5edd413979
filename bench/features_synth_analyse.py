"""Validate feature usage and probes where the truth is known: derm-synth with shortcut_corr 0.95 vs 0.5.

Reads the run directories bench/features_synth_train.py wrote, runs the usage test (epochs 2, 4, final) and
the patch insertion/removal probes through the same functions as `medattn features` / `medattn probe`, then
prints: how often the artefact is flagged (corrected p < 0.01), the concepts' and nuisances' rejection rates,
and the insertion flip rates per shortcut strength. Writes bench/results/features_synth.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from medattn.analysis.probes import ProbeOptions, probe_table
from medattn.analysis.usage import UsageOptions, usage_table
from medattn.data.synthetic import CONCEPTS, NUISANCE_PROBS

ROOT = Path(__file__).parent / "results" / "features_synth"


def analyse(corr: str) -> dict:
    """Usage and probe summary of one shortcut strength."""
    run_dir = ROOT / f"corr{corr}"
    usage = usage_table(run_dir, UsageOptions(epochs=(2, 4, "final"), bootstrap=200))
    probes = probe_table(run_dir, ProbeOptions(artefacts=("patch",), bootstrap=1000))
    final = usage[usage["epoch"].astype(str) == "final"]
    patch = final[final["feature"] == "patch"]
    nuisance = usage[usage["feature"].isin(list(NUISANCE_PROBS))]
    concepts = final[final["feature"].isin(CONCEPTS)]
    insert = probes[probes["probe"] == "insert"]
    return {
        "runs": int(final[["model", "seed"]].drop_duplicates().shape[0]),
        "patch_flagged_p_adj_lt_0.01": f"{int((patch['p_adjusted'] < 0.01).sum())}/{len(patch)}",
        "patch_cmi_bits_mean": float(patch["cmi_bits"].mean()),
        "patch_p_adjusted_max": float(patch["p_adjusted"].max()),
        "concept_flagged_rate_p_adj_lt_0.05": {c: float((g["p_adjusted"] < 0.05).mean())
                                               for c, g in concepts.groupby("feature")},
        "nuisance_tests": int(len(nuisance)),
        "nuisance_reject_rate_raw_p_lt_0.05": float((nuisance["pvalue"] < 0.05).mean()),
        "nuisance_reject_rate_p_adj_lt_0.05": float((nuisance["p_adjusted"] < 0.05).mean()),
        "insert_flip_rate_mean": float(insert["flip_rate"].mean()),
        "insert_flip_rate_by_run": insert["flip_rate"].round(3).tolist(),
        "insert_delta_p_malignant_mean": float(insert["delta_positive_prob"].mean()),
        "remove_flip_rate_mean": float(probes.loc[probes["probe"] == "remove", "flip_rate"].mean()),
        "ood_gap_mean": float(insert["ood_gap"].mean()),
    }


def main(strengths: list[str]) -> None:
    """Analyse the given strengths (default both), print, merge into the JSON file."""
    path = ROOT.parent / "features_synth.json"
    out = json.loads(path.read_text()) if path.is_file() else {}
    out.update({corr: analyse(corr) for corr in strengths})
    print(pd.DataFrame(out).to_string())
    path.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:] or ["0.95", "0.5"])
