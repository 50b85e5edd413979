"""Detector scorecard: how often each shortcut detector flags a run where a known artefact is a strong shortcut
(detection rate) and where it is independent of the class (false-alarm rate), with exact intervals.

The truth comes from the dataset specs in `results.csv` (`dataset_spec`): a `shortcut=TYPES` spec plants real
artefacts with P(artefact | class) = `shortcut_corr` (`medattn.data.shortcut`), derm-synth plants its own with
its `shortcut_corr`. A dataset whose correlation is 0.5 is a *control* (the artefact says nothing about the
class); any other correlation is a *shortcut*. Per run (dataset x model x seed) and artefact each detector says
"uses the artefact" or not:

  usage          features/usage.csv: the artefact's presence column at the kept weights (epoch best/final), its
                 p-value (`pvalue`), Holm across the planted artefacts of the run (one question per planted
                 artefact, as for the probes; the report's feature-usage table corrects across every feature of
                 the run, metadata included, which asks a wider question) < alpha
  insert_probe   features/probes.csv, probe insert: two-sided p < alpha for "the mean change of P(positive class)
                 is 0", from the 95 % percentile-bootstrap interval the probe table stores, read as a normal
                 interval (se = width / 3.92); Holm across the artefacts probed in the run
  remove_probe   the same for probe remove (inpainting the artefact's mask)
  ood_gap        results.csv: balanced accuracy on test minus on test_ood >= gap (a threshold, no nominal rate)
  *_vs_control   the insertion / removal probe's change of P(positive) against the same study's control runs
                 (t prediction interval, leave-one-out for a control run): the probes alone test "the artefact
                 moves the prediction", which a model trained without the shortcut may also do
  energy_METHOD  explanations/scores.csv, artefact_energy: the method's energy on the artefact mask exceeds the
                 uniform map's on the same images, one-sided Wilcoxon signed-rank p < alpha (scipy)

A detector a run directory lacks is left out. Rates carry exact Clopper-Pearson 95 % intervals
(scipy.stats.binomtest). The nominal false-alarm rate of a test at level alpha is alpha (usage, energy) and
alpha for the probes; a control's false-alarm rate within nominal + 2 Monte-Carlo standard errors
(sqrt(a (1 - a) / n)) is marked `ok`. Departure from the bench script it replaces: the probes were flagged when
the 95 % interval excluded 0 (a 5 % test); they are now tested at `alpha` like the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from medattn.data import synthetic
from medattn.data.dataset_spec import DataSpec, LoadContext, parse_spec
from medattn.errors import DataError
from medattn.rundir import layout
from medattn.stats.correction import holm_grouped

KEYS = ["study", "dataset", "model", "seed"]
FLAG_COLUMNS = [*KEYS, "role", "corr", "artefact", "detector", "value", "p", "flagged"]
FLAGS_FILE = "artefact_flags.csv"
SCORECARD_FILE = "artefact_scorecard.csv"
_Z95 = stats.norm.ppf(0.975)


@dataclass(frozen=True)
class ScorecardOptions:
    """Level of the tests, the ID - OOD gap that flags a run, and an optional artefact override."""

    alpha: float = 0.01
    gap: float = 0.05
    artefacts: tuple[str, ...] | None = None  # default: the planted ones, from the dataset specs


# --------------------------------------------------------------------------------------------- truth
def planted(spec_text: str) -> tuple[float, tuple[str, ...]] | None:
    """(correlation, artefact types) a dataset spec plants, or None when it plants no known artefact."""
    try:
        spec = parse_spec(spec_text)
    except DataError:
        return None
    if spec.kind == "synthetic":
        try:  # derm-synth's defaults: shortcut_corr 0.9, artefacts=patch
            corr = float(spec.options.get("shortcut_corr", 0.9))
        except ValueError:
            return None
        names = tuple(a for a in spec.options.get("artefacts", "patch").split(",") if a in synthetic.ARTEFACTS)
        return (corr, names) if names else None
    from medattn.data.shortcut import split_shortcut

    try:
        _, shortcut = split_shortcut(DataSpec(spec.kind, spec.target, spec.options), LoadContext())
    except DataError:
        return None
    return None if shortcut is None else (shortcut.corr, shortcut.types)


def datasets(results: pd.DataFrame, study: str) -> pd.DataFrame:
    """Per dataset of a results table: study, role (shortcut / control), correlation and artefact types."""
    if "dataset_spec" not in results:
        return pd.DataFrame(columns=["study", "dataset", "role", "corr", "artefacts"])
    rows = []
    for name, spec in results[["dataset", "dataset_spec"]].dropna().drop_duplicates("dataset").itertuples(False):
        truth = planted(str(spec))
        if truth is not None:
            rows.append({"study": study, "dataset": name, "role": "control" if truth[0] == 0.5 else "shortcut",
                         "corr": truth[0], "artefacts": truth[1]})
    return pd.DataFrame(rows, columns=["study", "dataset", "role", "corr", "artefacts"])


# -------------------------------------------------------------------------------------------- detectors
def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=["dataset", "model", "seed", "artefact", "detector", "value", "p", "flagged"])


def usage_flags(usage: pd.DataFrame | None) -> pd.DataFrame:
    """Per run and feature at the kept weights: the usage test's own p. Not flagged yet: `run_flags`, which knows
    the planted artefacts, applies Holm across them and flags."""
    if usage is None or not {"feature", "pvalue"} <= set(usage):
        return _empty()
    rows = usage[usage["epoch"].astype(str).isin(["best", "final"])] if "epoch" in usage else usage
    p = rows["pvalue"].astype(float)
    return pd.DataFrame({"dataset": rows["dataset"], "model": rows["model"], "seed": rows["seed"],
                         "artefact": rows["feature"], "detector": "usage",
                         "value": rows.get("cmi_corrected_bits", p), "p": p, "flagged": False})


def probe_flags(probes: pd.DataFrame | None, alpha: float) -> pd.DataFrame:
    """Per run, artefact and probe (insert, remove): p of a zero mean change of P(positive), Holm per run."""
    need = {"probe", "artefact", "delta_positive_prob", "delta_positive_prob_low", "delta_positive_prob_high"}
    if probes is None or not need <= set(probes):
        return _empty()
    rows = probes[probes["probe"].isin(["insert", "remove"])].reset_index(drop=True)
    se = (rows["delta_positive_prob_high"] - rows["delta_positive_prob_low"]) / (2 * _Z95)
    z = rows["delta_positive_prob"] / se.where(se > 0)
    p = np.where(se > 0, 2 * stats.norm.sf(np.abs(z)), np.where(rows["delta_positive_prob"] == 0, 1.0, 0.0))
    run = rows["dataset"].astype(str) + "|" + rows["model"].astype(str) + "|" + rows["seed"].astype(str)
    adjusted, _ = holm_grouped(p, run + "|" + rows["probe"])
    return pd.DataFrame({"dataset": rows["dataset"], "model": rows["model"], "seed": rows["seed"],
                         "artefact": rows["artefact"], "detector": rows["probe"] + "_probe",
                         "value": rows["delta_positive_prob"], "p": adjusted, "flagged": adjusted < alpha})


def gap_flags(results: pd.DataFrame, gap: float) -> pd.DataFrame:
    """Per run: balanced accuracy on test minus on test_ood (final stage), flagged at >= gap."""
    ba = results[results["metric"] == "balanced_accuracy"]
    if "stage" in ba:
        ba = ba[ba["stage"].fillna("final") == "final"]
    test = ba[ba["split"] == "test"].groupby(["dataset", "model", "seed"])["value"].mean()
    ood = ba[ba["split"] == "test_ood"].groupby(["dataset", "model", "seed"])["value"].mean()
    diff = (test - ood).dropna().rename("value").reset_index()
    return diff.assign(artefact="*", detector="ood_gap", p=np.nan, flagged=diff["value"] >= gap)


def energy_flags(scores: pd.DataFrame | None, runs: pd.DataFrame | None, alpha: float) -> pd.DataFrame:
    """Per run and map method: artefact energy above the uniform map's on the same images (one-sided Wilcoxon)."""
    if scores is None or "metric" not in scores:
        return _empty()
    scores = scores[scores["metric"] == "artefact_energy"]
    keys = ["dataset", "model", "seed"]
    if not set(keys) <= set(scores):
        if runs is None or "run" not in scores or "run" not in runs:
            return _empty()
        scores = scores.merge(runs[["run", *keys]], on="run")
    out = []
    for key, run in scores.groupby(keys):
        uniform = run[run["method"] == "uniform"].groupby("image_id")["value"].mean()
        for method, rows in run[~run["method"].isin(["uniform", "random", "oracle", "oracle_grid"])].groupby(
                "method"):
            paired = pd.concat([rows.groupby("image_id")["value"].mean(), uniform], axis=1, join="inner").dropna()
            if len(paired) < 2:
                continue
            diff = paired.iloc[:, 0] - paired.iloc[:, 1]
            p = 1.0 if np.allclose(diff, 0) else float(stats.wilcoxon(diff, alternative="greater").pvalue)
            out.append({**dict(zip(keys, key, strict=True)), "artefact": "*", "detector": f"energy_{method}",
                        "value": float(paired.iloc[:, 0].mean() / max(paired.iloc[:, 1].mean(), 1e-12)),
                        "p": p, "flagged": p < alpha})
    return pd.DataFrame(out, columns=_empty().columns)


# ------------------------------------------------------------------------------------------ run dirs
def _csv(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.is_file() else None


def run_flags(run_dir: Path, opts: ScorecardOptions = ScorecardOptions()) -> pd.DataFrame:
    """Every detector's flag for every run of one study whose dataset plants a known artefact."""
    run_dir = Path(run_dir)
    results = _csv(run_dir / layout.RESULTS_CSV)
    if results is None:
        raise DataError(f"{run_dir}: no {layout.RESULTS_CSV}; give the output folder of a finished study "
                        f"(medattn study run)")
    truth = datasets(results, run_dir.name)
    if truth.empty:
        raise DataError(f"{run_dir}: no dataset plants a known artefact; use dataset specs with shortcut=TYPES "
                        f"(or derm-synth) at a strong correlation and at shortcut_corr=0.5")
    features, explanations = run_dir / layout.FEATURES, run_dir / layout.EXPLANATIONS
    found = [f for f in (
        usage_flags(_csv(features / layout.USAGE)),
        probe_flags(_csv(features / layout.PROBES), opts.alpha),
        gap_flags(results, opts.gap),
        energy_flags(_csv(explanations / layout.EXPLAIN_SCORES), _csv(explanations / layout.EXPLAINED_RUNS),
                     opts.alpha)) if len(f)]
    if not found:  # no detector has anything to say yet (no features, probes, test_ood or explanations)
        return pd.DataFrame(columns=FLAG_COLUMNS)
    flags = pd.concat(found, ignore_index=True)
    flags = flags.merge(truth, on="dataset")
    flags = pd.concat([flags, contrast_flags(flags, opts.alpha)], ignore_index=True)
    keep = [opts.artefacts is None and a in arts or opts.artefacts is not None and a in opts.artefacts
            for a, arts in zip(flags["artefact"], flags["artefacts"], strict=True)]
    flags = flags[np.asarray(keep, bool) | (flags["artefact"] == "*")].reset_index(drop=True)
    usage = (flags["detector"] == "usage").to_numpy()
    if usage.any():
        run = flags.loc[usage, ["dataset", "model", "seed"]].astype(str).agg("|".join, axis=1)
        flags.loc[usage, "p"] = holm_grouped(flags.loc[usage, "p"].astype(float), run)[0]
        flags.loc[usage, "flagged"] = flags.loc[usage, "p"].astype(float) < opts.alpha
    flags = flags.assign(flagged=flags["flagged"].astype(bool), seed=flags["seed"].astype(int))
    return flags[FLAG_COLUMNS].reset_index(drop=True)


def contrast_flags(flags: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Probe effects against the study's control runs: per probe and artefact, a run's change of P(positive) is
    compared with the control runs' changes (every model; a control run with the others, leave-one-out) by the
    t prediction interval: t = (x - mean) / (sd sqrt(1 + 1 / n)), n - 1 df, two-sided; exact when the control
    effects are normal and the run is exchangeable with them, i.e. under 'the correlation changed nothing'."""
    probes = flags[flags["detector"].isin(["insert_probe", "remove_probe"])]
    out = []
    for (detector, _artefact), group in probes.groupby(["detector", "artefact"]):
        control = group[group["role"] == "control"]
        for idx, row in group.iterrows():
            ref = control.loc[control.index != idx, "value"].astype(float)
            if len(ref) < 2 or ref.std(ddof=1) == 0:
                continue
            t = (float(row["value"]) - ref.mean()) / (ref.std(ddof=1) * np.sqrt(1 + 1 / len(ref)))
            p = float(2 * stats.t.sf(abs(t), len(ref) - 1))
            out.append({**row.to_dict(), "detector": f"{detector}_vs_control", "p": p, "flagged": p < alpha})
    return pd.DataFrame(out, columns=flags.columns)


def nominal_rate(detector: str, alpha: float) -> float:
    """The false-alarm rate a detector's test promises at level alpha (NaN for the gap threshold)."""
    return float("nan") if detector == "ood_gap" else alpha


def scorecard(flags: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Per detector: detection rate over shortcut runs, false-alarm rate over control runs, the detection rate
    among the shortcut runs whose ID - OOD gap flagged them (the runs that demonstrably learned the shortcut),
    exact 95 % CIs, and whether the false-alarm rate is within nominal + 2 Monte-Carlo SE."""
    rows = []
    gapped = flags.loc[(flags["detector"] == "ood_gap") & flags["flagged"].astype(bool), KEYS]
    gapped = set(map(tuple, gapped.astype(str).to_numpy()))
    for detector, group in flags.groupby("detector", sort=True):
        row = {"detector": detector, "nominal": nominal_rate(str(detector), alpha)}
        with_gap = np.array([tuple(k) in gapped for k in group[KEYS].astype(str).to_numpy()], bool)
        for label, sel in (("detection", group["role"] == "shortcut"), ("false_alarm", group["role"] == "control"),
                           ("detection_given_gap", (group["role"] == "shortcut").to_numpy() & with_gap)):
            hits = group.loc[sel, "flagged"].astype(bool)
            n, k = int(hits.size), int(hits.sum())
            ci = stats.binomtest(k, n).proportion_ci(method="exact") if n else None
            row.update({f"{label}_runs": n, f"{label}_flagged": k, f"{label}_rate": k / n if n else np.nan,
                        f"{label}_low": ci.low if ci else np.nan, f"{label}_high": ci.high if ci else np.nan})
        a, n = row["nominal"], row["false_alarm_runs"]
        row["false_alarm_bound"] = a + 2 * np.sqrt(a * (1 - a) / n) if n and not np.isnan(a) else np.nan
        row["false_alarm_ok"] = (bool(row["false_alarm_rate"] <= row["false_alarm_bound"])
                                 if not np.isnan(row["false_alarm_bound"]) else None)
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(card: pd.DataFrame) -> str:
    """The scorecard as a Markdown table: k/n = rate [exact 95 % CI] per role, and the nominal check."""
    lines = ["| detector | detection at the shortcut | false alarms at the control | nominal + 2 MC SE | "
             "detection where the ID - OOD gap flags |", "| --- | --- | --- | --- | --- |"]
    for r in card.to_dict("records"):
        cells = []
        for label in ("detection", "false_alarm", "detection_given_gap"):
            n = r[f"{label}_runs"]
            cells.append("no runs" if not n else f"{r[f'{label}_flagged']}/{n} = {r[f'{label}_rate']:.2f} "
                                                 f"[{r[f'{label}_low']:.2f}, {r[f'{label}_high']:.2f}]")
        bound = r["false_alarm_bound"]
        check = "-" if bound is None or np.isnan(bound) else (
            f"{bound:.3f}: {'ok' if r['false_alarm_ok'] else 'EXCEEDED'}")
        lines.append(f"| {r['detector']} | {cells[0]} | {cells[1]} | {check} | {cells[2]} |")
    return "\n".join(lines)


def study_scorecard(run_dirs: list[Path], opts: ScorecardOptions = ScorecardOptions()) -> tuple[pd.DataFrame,
                                                                                                pd.DataFrame]:
    """(flags, scorecard) over one or several study output folders (e.g. one per artefact type or strength)."""
    if not run_dirs:
        raise DataError("scorecard: give at least one study output folder")
    flags = pd.concat([run_flags(Path(d), opts) for d in run_dirs], ignore_index=True)
    return flags, scorecard(flags, opts.alpha)
