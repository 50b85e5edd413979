"""Detector scorecard of a study with a planted shortcut: detection rate where it is strong, false alarms where not.

    python bench/artefacts_scorecard.py RUN_DIR --artefact ink --shortcut ink-0.9 --control ink-0.5

RUN_DIR is a finished study whose datasets plant a known artefact (a `shortcut=` spec, or derm-synth) at two
strengths: `--shortcut` names the dataset with the strong correlation, `--control` the one where the artefact
is independent of the class. Per run (dataset x model x seed) each detector says "uses the artefact" or not:

  usage          features/usage.csv: the artefact's presence column, corrected p (p_adjusted) < --alpha
                 (the kept weights: epoch best/final)
  insert_probe   features/probes.csv, probe insert: the 95 % bootstrap interval of the change of P(positive
                 class) excludes 0 (the probes table gives intervals, not p-values)
  remove_probe   the same for probe remove (inpainting the artefact's mask)
  ood_gap        results.csv: balanced accuracy on test minus on test_ood >= --gap
  energy         explanations/scores.csv, artefact_energy: the method's energy exceeds the uniform map's on the
                 same images, one-sided Wilcoxon signed-rank p < --alpha (scipy), per method

A detector missing from the run directory is left out. Rates come with exact (Clopper-Pearson) 95 % intervals
(scipy.stats.binomtest). Writes the per-run flags and the scorecard as CSV (default RUN_DIR/features/) and prints
the scorecard as a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

KEYS = ["dataset", "model", "seed"]


def _read(path: Path) -> pd.DataFrame | None:
    """A CSV, or None when absent."""
    return pd.read_csv(path) if path.is_file() else None


def usage_flags(usage: pd.DataFrame | None, artefact: str, alpha: float) -> pd.DataFrame:
    """Per run: the usage test of the artefact's column at the kept weights, flagged at p_adjusted < alpha."""
    if usage is None or "feature" not in usage:
        return pd.DataFrame(columns=[*KEYS, "detector", "flagged", "value"])
    rows = usage[usage["feature"] == artefact]
    if "epoch" in rows:
        rows = rows[rows["epoch"].astype(str).isin(["best", "final"])]
    return pd.DataFrame({**{k: rows[k] for k in KEYS}, "detector": "usage", "value": rows["p_adjusted"],
                         "flagged": rows["p_adjusted"] < alpha})


def probe_flags(probes: pd.DataFrame | None, artefact: str) -> pd.DataFrame:
    """Per run and probe (insert, remove): flagged when the 95 % interval of the P(positive) change excludes 0."""
    if probes is None or "probe" not in probes:
        return pd.DataFrame(columns=[*KEYS, "detector", "flagged", "value"])
    rows = probes[(probes["artefact"] == artefact) & probes["probe"].isin(["insert", "remove"])]
    low, high = rows["delta_positive_prob_low"], rows["delta_positive_prob_high"]
    return pd.DataFrame({**{k: rows[k] for k in KEYS}, "detector": rows["probe"] + "_probe",
                         "value": rows["delta_positive_prob"], "flagged": (low > 0) | (high < 0)})


def gap_flags(results: pd.DataFrame, gap: float) -> pd.DataFrame:
    """Per run: balanced accuracy on test minus test_ood, flagged at >= gap."""
    ba = results[(results["metric"] == "balanced_accuracy") & (results.get("stage", "final") == "final")]
    test = ba[ba["split"] == "test"].groupby(KEYS)["value"].mean()
    ood = ba[ba["split"] == "test_ood"].groupby(KEYS)["value"].mean()
    diff = (test - ood).dropna().rename("value").reset_index()
    return diff.assign(detector="ood_gap", flagged=diff["value"] >= gap)


def energy_flags(scores: pd.DataFrame | None, runs: pd.DataFrame | None, alpha: float) -> pd.DataFrame:
    """Per run and method: artefact energy above the uniform map's on the same images (one-sided Wilcoxon)."""
    if scores is None or "metric" not in scores:
        return pd.DataFrame(columns=[*KEYS, "detector", "flagged", "value"])
    scores = scores[scores["metric"] == "artefact_energy"]
    keys = [k for k in KEYS if k in scores]
    if len(keys) < len(KEYS):
        if runs is None or "run" not in scores:
            return pd.DataFrame(columns=[*KEYS, "detector", "flagged", "value"])
        scores = scores.merge(runs[["run", *KEYS]], on="run")
    out = []
    for key, run in scores.groupby(KEYS):
        uniform = run[run["method"] == "uniform"].set_index("image_id")["value"]
        for method, rows in run[~run["method"].isin(["uniform", "random"])].groupby("method"):
            paired = pd.concat([rows.groupby("image_id")["value"].mean(), uniform], axis=1, join="inner").dropna()
            if len(paired) < 2:
                continue
            diff = paired.iloc[:, 0] - paired.iloc[:, 1]
            p = 1.0 if np.allclose(diff, 0) else stats.wilcoxon(diff, alternative="greater").pvalue
            out.append({**dict(zip(KEYS, key, strict=True)), "detector": f"energy_{method}",
                        "value": float(paired.iloc[:, 0].mean() / max(paired.iloc[:, 1].mean(), 1e-12)),
                        "flagged": bool(p < alpha)})
    return pd.DataFrame(out, columns=[*KEYS, "detector", "flagged", "value"])


def scorecard(flags: pd.DataFrame, shortcut: str, control: str) -> pd.DataFrame:
    """Per detector: detection rate on the shortcut dataset, false-alarm rate on the control, exact 95 % CIs."""
    rows = []
    for detector, group in flags.groupby("detector", sort=True):
        row = {"detector": detector}
        for label, dataset in (("detection", shortcut), ("false_alarm", control)):
            hits = group[group["dataset"] == dataset]["flagged"].astype(bool)
            n, k = int(hits.size), int(hits.sum())
            ci = stats.binomtest(k, n).proportion_ci(method="exact") if n else None
            row.update({f"{label}_runs": n, f"{label}_flagged": k, f"{label}_rate": k / n if n else np.nan,
                        f"{label}_low": ci.low if ci else np.nan, f"{label}_high": ci.high if ci else np.nan})
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(card: pd.DataFrame) -> str:
    """The scorecard as a Markdown table."""
    lines = ["| detector | detection at the shortcut | false alarms at the control |", "| --- | --- | --- |"]
    for r in card.itertuples():
        cells = []
        for label in ("detection", "false_alarm"):
            n = getattr(r, f"{label}_runs")
            cells.append("no runs" if not n else f"{getattr(r, f'{label}_flagged')}/{n} = "
                         f"{getattr(r, f'{label}_rate'):.2f} [{getattr(r, f'{label}_low'):.2f}, "
                         f"{getattr(r, f'{label}_high'):.2f}]")
        lines.append(f"| {r.detector} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Write the flags and scorecard CSVs, print the table; return the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--artefact", default="ink")
    ap.add_argument("--shortcut", required=True, help="dataset name with the strong shortcut")
    ap.add_argument("--control", required=True, help="dataset name where the artefact is independent")
    ap.add_argument("--alpha", type=float, default=0.01)
    ap.add_argument("--gap", type=float, default=0.05, help="ID - OOD balanced accuracy gap that flags a run")
    ap.add_argument("--out", type=Path, default=None, help="folder for the CSVs (default RUN_DIR/features)")
    args = ap.parse_args(argv)
    run = args.run_dir
    results = _read(run / "results.csv")
    if results is None:
        print(f"{run}/results.csv not found: give a finished study's output folder", file=sys.stderr)
        return 2
    flags = pd.concat([f for f in (
        usage_flags(_read(run / "features" / "usage.csv"), args.artefact, args.alpha),
        probe_flags(_read(run / "features" / "probes.csv"), args.artefact),
        gap_flags(results, args.gap),
        energy_flags(_read(run / "explanations" / "scores.csv"), _read(run / "explanations" / "runs.csv"),
                     args.alpha)) if len(f)], ignore_index=True)
    missing = sorted({args.shortcut, args.control} - set(flags["dataset"]))
    if missing:
        print(f"dataset(s) {', '.join(missing)} not in {run}; datasets: {', '.join(sorted(set(flags['dataset'])))}",
              file=sys.stderr)
        return 2
    card = scorecard(flags, args.shortcut, args.control)
    out = args.out or run / "features"
    out.mkdir(parents=True, exist_ok=True)
    flags.to_csv(out / "artefact_flags.csv", index=False)
    card.to_csv(out / "artefact_scorecard.csv", index=False)
    print(markdown(card))
    print(f"\nwrote {out / 'artefact_flags.csv'} and {out / 'artefact_scorecard.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
