"""Every file and folder name of a run directory, in one table (:data:`LAYOUT`), and the helpers that build them.

A run directory is what ``medattn study run`` (or ``medattn train --out``) writes and what every later stage
reads: explain, features, probes, report, survey (DESIGN.md, "The run directory is the contract between
stages"). Paths are POSIX patterns relative to the run directory; ``{name}`` fields are filled by the helpers
below. No other module spells one of these names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass(frozen=True)
class RunPath:
    """One file or folder of a run directory: its key, path pattern, kind, the stage writing it, what it holds."""

    key: str
    path: str
    kind: Literal["file", "folder"]
    written_by: str
    description: str


RESULTS_CSV = "results.csv"
RESULTS_PARQUET = "results.parquet"
STUDY_JSON = "study.json"
JOURNAL = "study.journal"
ARTIFACTS = "artifacts"
CHECKPOINT = "model.safetensors"
SIDECAR = "model.json"
METRICS_JSON = "metrics.json"
EXPLANATIONS = "explanations"
SAMPLE = "sample.npz"
EXPLAINED_RUNS = "runs.csv"
EXPLAIN_SCORES = "scores.csv"
EXPLAIN_SUMMARY = "summary.csv"
EXPLAIN_SETTINGS = "settings.json"
MAPS = "maps.npz"
MAPS_INDEX = "index.csv"
FEATURES = "features"
USAGE = "usage.csv"
PROBES = "probes.csv"
SURVEY = "survey"
SURVEY_ANSWERS = "answers.csv"
REPORT = "report"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
COMPARISONS = "comparisons.csv"
SUMMARY = "summary.csv"

RUN = f"{ARTIFACTS}/{{dataset}}/{{model}}/seed{{seed}}-trial{{trial}}"

LAYOUT: tuple[RunPath, ...] = (
    RunPath("results", RESULTS_CSV, "file", "study results, train",
            "the tidy results table: one row per run x split x metric (columns: RESULT_COLUMNS)"),
    RunPath("results_parquet", RESULTS_PARQUET, "file", "study results --format parquet",
            "the same table as Parquet; read in preference to results.csv"),
    RunPath("study", STUDY_JSON, "file", "study run, train",
            "the resolved study description, schema version, provenance and the comparison plan (contrasts)"),
    RunPath("journal", JOURNAL, "file", "study run", "the Optuna journal storage (default storage)"),
    RunPath("artifacts", ARTIFACTS, "folder", "study run", "one folder per final run"),
    RunPath("run", RUN, "folder", "study run", "one run's artifacts (a train folder is this folder itself)"),
    RunPath("checkpoint", f"{RUN}/{CHECKPOINT}", "file", "train", "the best epoch's weights (safetensors)"),
    RunPath("sidecar", f"{RUN}/{SIDECAR}", "file", "train",
            "the checkpoint's sidecar: schema version, provenance, model/train/data config, epoch"),
    RunPath("metrics", f"{RUN}/{METRICS_JSON}", "file", "train",
            "status, best epoch, per-split metrics, per-epoch history, timing, hardware, artifact paths"),
    RunPath("predictions", f"{RUN}/predictions_{{split}}.csv", "file", "train",
            "per-image class probabilities of the best epoch: index, label, prob_0..prob_K-1"),
    RunPath("epoch_checkpoint", f"{RUN}/epoch_{{epoch:03d}}.safetensors", "file", "train (train.save_epochs)",
            "weights saved at a given epoch, with a .json sidecar beside it"),
    RunPath("run_maps", f"{RUN}/{EXPLANATIONS}/{MAPS}", "file", "explain",
            "one run's explanation maps: float16 M x H x W in [0, 1]"),
    RunPath("run_maps_index", f"{RUN}/{EXPLANATIONS}/{MAPS_INDEX}", "file", "explain",
            "one row per map: row, image_id, method, layer, target, target_class, predicted, label, probability"),
    RunPath("explanations", EXPLANATIONS, "folder", "explain", "the study's explanation store"),
    RunPath("sample", f"{EXPLANATIONS}/{SAMPLE}", "file", "explain",
            "the explained images of the first dataset (ids, uint8 images, labels, masks)"),
    RunPath("sample_other", f"{EXPLANATIONS}/sample-{{dataset}}.npz", "file", "explain",
            "the explained images of every further dataset"),
    RunPath("explained_runs", f"{EXPLANATIONS}/{EXPLAINED_RUNS}", "file", "explain",
            "the explained runs: dataset, model, backbone, attention, seed, run_dir, maps, sample"),
    RunPath("explain_scores", f"{EXPLANATIONS}/{EXPLAIN_SCORES}", "file", "explain",
            "localisation, faithfulness and randomisation scores per run x image x method"),
    RunPath("explain_summary", f"{EXPLANATIONS}/{EXPLAIN_SUMMARY}", "file", "explain",
            "mean, 95 % CI, image and NaN counts per dataset x model x method x target x metric"),
    RunPath("explain_settings", f"{EXPLANATIONS}/{EXPLAIN_SETTINGS}", "file", "explain",
            "the explain settings the scores were computed with (layer, upsampling, steps, tolerance, ...)"),
    RunPath("features", FEATURES, "folder", "features, probe", "the feature-usage analyses"),
    RunPath("usage", f"{FEATURES}/{USAGE}", "file", "features", "one row per run x epoch x feature"),
    RunPath("abcd", f"{FEATURES}/abcd_{{dataset}}.csv", "file", "features",
            "ABCD lesion measures of a dataset's images"),
    RunPath("probes", f"{FEATURES}/{PROBES}", "file", "probe", "shortcut probe effects per run x artefact"),
    RunPath("survey_answers", f"{SURVEY}/{SURVEY_ANSWERS}", "file", "survey export",
            "the clinician survey's answers, read by the report"),
    RunPath("report", REPORT, "folder", "report", "the report (report.md, report.html, figures/) and its tables"),
    RunPath("report_md", f"{REPORT}/{REPORT_MD}", "file", "report", "the report as Markdown, figures in figures/"),
    RunPath("report_html", f"{REPORT}/{REPORT_HTML}", "file", "report",
            "the report as one self-contained HTML page (figures inline)"),
    RunPath("comparisons", f"{REPORT}/{COMPARISONS}", "file", "report",
            "every comparison's statistics, for every evaluated split"),
    RunPath("summary", f"{REPORT}/{SUMMARY}", "file", "report",
            "per dataset, model and metric: mean, sd, seeds, costs"),
)


def run_folder(dataset: str, model: str, seed: int, trial: int) -> str:
    """Return one run's artifact folder, relative to the run directory."""
    return RUN.format(dataset=dataset, model=model, seed=seed, trial=trial)


def predictions_name(split: str) -> str:
    """Return the file name of a run's predictions on ``split``."""
    return f"predictions_{split}.csv"


def predictions_key(split: str) -> str:
    """Return the key of a run's predictions on ``split`` among metrics.json's (and the study's) artifacts."""
    return f"predictions_{split}"


def epoch_checkpoint_name(epoch: int) -> str:
    """Return the file name of the weights saved at ``epoch``."""
    return f"epoch_{int(epoch):03d}.safetensors"


def saved_epochs(run: Path) -> list[int]:
    """Return the epochs whose weights a run saved (``epoch_NNN.safetensors``), sorted."""
    return sorted(int(p.stem.split("_")[1]) for p in Path(run).glob("epoch_*.safetensors"))


def sample_name(dataset: str, first: bool) -> str:
    """Return the file name of a dataset's explained sample: sample.npz for the first dataset."""
    return SAMPLE if first else f"sample-{dataset}.npz"


def abcd_name(dataset: str) -> str:
    """Return the file name of a dataset's ABCD measures in features/."""
    return f"abcd_{dataset}.csv"


def sidecar_path(checkpoint: Path) -> Path:
    """Return the JSON sidecar beside a checkpoint (``model.safetensors`` -> ``model.json``)."""
    return Path(checkpoint).with_suffix(".json")
