"""Where the truth is known: do explanations, feature usage and probes tell a strong shortcut from none?

Reads the output of `medattn study run examples/derm-synth-shortcuts.yaml` (derm-synth with a colour-chart
shortcut of strength 0.95 and 0.5, ResNet-18 and ResNet-18+CBAM, 3 seeds, checkpoints at epochs 2 and 4) and
prints, per shortcut strength:

- test balanced accuracy (in distribution) and on `test_ood` (chart independent of the class);
- explanations (the study's `explanations/scores.csv`): Grad-CAM energy on the chart in test images that show it,
  the uniform-map baseline, and the strong-minus-weak difference with a Welch 95 % CI over images x runs and,
  since the runs of a dataset share their images, over run means;
- feature usage (`medattn features`' test on `test_ood`, where the chart varies within each label stratum; on
  `test` it is nearly a copy of the label): how many runs use the chart at Holm-corrected p < 0.01, how many use
  each class-causal concept at p < 0.05, and the rejection rate of the class-independent nuisances (hair,
  vignetting) at alpha 0.05 over all runs and checkpoints;
- the chart insertion probe (`medattn probe`): flip rate per run and its strong-minus-weak difference.

Writes bench/results/shortcut_evidence.json.

    python bench/shortcut_evidence.py [RUN_DIR]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from medattn.analysis.probes import ProbeOptions, probe_table
from medattn.analysis.usage import UsageOptions, usage_table
from medattn.data.synthetic import CONCEPTS, NUISANCE_PROBS
from medattn.rundir.reader import find_results_file, read_results

REPO = Path(__file__).resolve().parents[1]
STRONG, WEAK = "shortcut-0.95", "shortcut-0.5"


def welch(strong: np.ndarray, weak: np.ndarray) -> dict:
    """Mean difference strong - weak with a Welch 95 % CI."""
    vs, vw = strong.var(ddof=1) / len(strong), weak.var(ddof=1) / len(weak)
    dof = (vs + vw) ** 2 / (vs ** 2 / (len(strong) - 1) + vw ** 2 / (len(weak) - 1))
    diff, half = strong.mean() - weak.mean(), stats.t.ppf(0.975, dof) * np.sqrt(vs + vw)
    return {"strong": round(float(strong.mean()), 4), "weak": round(float(weak.mean()), 4),
            "difference": round(float(diff), 4), "ci95": [round(float(diff - half), 4), round(float(diff + half), 4)],
            "n": [len(strong), len(weak)]}


def accuracy(run_dir: Path) -> dict:
    """Mean balanced accuracy per dataset x model on test and test_ood."""
    results = read_results(find_results_file(run_dir))
    final = results[(results["metric"] == "balanced_accuracy") & results["split"].isin(["test", "test_ood"])]
    if "stage" in final.columns:
        final = final[final["stage"] == "final"]
    table = final.groupby(["dataset", "model", "split"])["value"].mean().round(3)
    return {f"{d} {m} {s}": v for (d, m, s), v in table.items()}


def strong_vs_weak(values: pd.Series) -> dict:
    """Welch comparison of the values indexed (first level) by dataset: strong minus weak shortcut."""
    return welch(values[STRONG].to_numpy(float), values[WEAK].to_numpy(float))


def explanations(run_dir: Path) -> dict:
    """Grad-CAM energy on the chart, strong vs weak shortcut (images with a chart; every run and image)."""
    scores = pd.read_csv(run_dir / "explanations" / "scores.csv")
    energy = scores[(scores["metric"] == "artefact_energy") & (scores["target"] == "predicted")].dropna(subset="value")
    by_dataset = energy.set_index("dataset")
    out = {method: strong_vs_weak(by_dataset.loc[by_dataset["method"] == method, "value"])
           for method in ("gradcam", "uniform")}
    gradcam = energy[energy["method"] == "gradcam"]
    # the images of one dataset are shared by its runs: the run means (6 vs 6) give the conservative interval
    out["gradcam, run means"] = strong_vs_weak(gradcam.groupby(["dataset", "model", "seed"])["value"].mean())
    for model, own in gradcam.groupby("model"):
        out[f"gradcam {model}"] = strong_vs_weak(own.set_index("dataset")["value"])
    return out


def usage(run_dir: Path) -> dict:
    """Usage-test counts per shortcut strength (test_ood, Holm across features)."""
    table = usage_table(run_dir, UsageOptions(epochs=(2, 4, "final"), split="test_ood", bootstrap=200))
    final = table[table["epoch"].astype(str) == "final"]
    out = {}
    for dataset, own in final.groupby("dataset"):
        chart = own[own["feature"] == "patch"]
        out[f"{dataset}: chart used (p_holm < 0.01)"] = f"{int((chart['p_adjusted'] < 0.01).sum())}/{len(chart)}"
        out[f"{dataset}: chart CMI bits (mean)"] = round(float(chart["cmi_bits"].mean()), 4)
        concepts = own[own["feature"].isin(CONCEPTS)]
        runs = len(own.drop_duplicates(["model", "seed"]))
        out[f"{dataset}: concepts used (p_holm < 0.05), of {runs} runs"] = {
            c: int((g["p_adjusted"] < 0.05).sum()) for c, g in concepts.groupby("feature")}
    nuisance = table[table["feature"].isin(list(NUISANCE_PROBS))]
    out["nuisance tests (all runs, epochs 2/4/final)"] = int(len(nuisance))
    out["nuisance rejection rate, raw p < 0.05"] = round(float((nuisance["pvalue"] < 0.05).mean()), 3)
    out["nuisance rejection rate, p_holm < 0.05"] = round(float((nuisance["p_adjusted"] < 0.05).mean()), 3)
    return out


def probes(run_dir: Path) -> dict:
    """Chart insertion flip rates per run, strong vs weak."""
    table = probe_table(run_dir, ProbeOptions(artefacts=("patch",), removal=False, split="test_ood"))
    insert = table[table["probe"] == "insert"]
    flips = insert.set_index("dataset")["flip_rate"]
    return {"insert flip rate by run": {d: np.round(g.to_numpy(float), 3).tolist() for d, g in flips.groupby(level=0)},
            "insert flip rate strong - weak": strong_vs_weak(flips)}


def main() -> None:
    run_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "runs" / "derm-synth-shortcuts"
    out = {"accuracy": accuracy(run_dir), "explanations": explanations(run_dir), "usage": usage(run_dir),
           "probes": probes(run_dir)}
    print(json.dumps(out, indent=2))
    path = REPO / "bench" / "results" / "shortcut_evidence.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
