"""`medattn features RUN_DIR` and `medattn probe RUN_DIR`: feature usage and shortcut probes of a finished study."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from medattn.errors import DataError
from medattn.stats.resampling import PERMUTATIONS, PROBE_BOOTSTRAP

console = Console(width=None if sys.stdout.isatty() else 160)


def parse_epochs(text: str) -> list[int | str]:
    """Epoch list from '5,10,best' ('final' is an alias of 'best'; DataError for anything else)."""
    out: list[int | str] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part in ("best", "final"):
            out.append("best")
        elif part.isdigit() and int(part) > 0:
            out.append(int(part))
        else:
            raise DataError(f"--epochs: '{part}' is neither a positive epoch number nor 'best' (the kept, "
                            "best-validation weights); e.g. --epochs 5,10,best")
    if not out:
        raise DataError("--epochs: empty; e.g. --epochs 5,10,best")
    return out


def features_command(
    run_dir: Path = typer.Argument(..., help="Study output folder (holds results.csv).", show_default=False),
    features: Path = typer.Option(None, "--features", help="Extra features: a CSV with an id column (id, image_id, "
                                                            "case_num or isic_id) and one column per feature."),
    id_column: str = typer.Option(None, "--id-column", help="The id column of --features (default: found by name)."),
    epochs: str = typer.Option("best", "--epochs", help="Comma list of saved epochs and/or 'best' (the kept, "
                                                        "best-validation weights), e.g. 5,10,best."),
    split: str = typer.Option("test", "--split", help="Split whose predictions are tested."),
    prediction: str = typer.Option("class", "--prediction", help="What is tested: the predicted class, or the "
                                                                 "malignant-class probability in quartile bins "
                                                                 "(probability)."),
    correction: str = typer.Option("holm", "--correction", help="Across features: holm or bh (Benjamini-Hochberg)."),
    permutations: int = typer.Option(PERMUTATIONS, "--permutations", min=19,
                                     help="First batch of permutations (null mean of G); sparse tables draw up to "
                                          "20 m / alpha for a family of m features."),
    alpha: float = typer.Option(0.05, "--alpha", min=0.0, max=1.0, help="Level the corrected p-values are read at "
                                                                        "(the 'used' mark; the permutation budget)."),
    include_derived: bool = typer.Option(False, "--include-derived", help="Keep derived features (e.g. Derm7pt's "
                                                                          "seven_point_score) in the family."),
) -> None:
    """Test which features each model's predictions use (H0: prediction independent of feature given label)."""
    from medattn.analysis.usage import FEATURES_DIR, USAGE_FILE, UsageOptions, usage_table

    opts = UsageOptions(epochs=parse_epochs(epochs), split=split, features_file=str(features) if features else None,
                        id_column=id_column, correction=correction, permutations=permutations, alpha=alpha,
                        include_derived=include_derived, prediction=prediction)
    table = usage_table(run_dir, opts, notify=lambda msg: console.print(f"notice: {msg}", highlight=False))
    print_usage_summary(table, alpha)
    console.print(f"usage table: {run_dir / FEATURES_DIR / USAGE_FILE} ({len(table)} rows)", highlight=False)


def print_usage_summary(table, alpha: float) -> None:
    """Print features x models: mean corrected CMI (bits) over seeds, with marks for use, exclusion, one label group."""
    if table.empty:
        console.print("no runs to test")
        return
    label = "epoch_label" if "epoch_label" in table.columns else "epoch"
    for (dataset, epoch), part in table.groupby(["dataset", label], sort=False):
        grid = Table(title=escape(f"{dataset}, {epoch}: corrected CMI(prediction; feature | label) in bits, mean over "
                           f"seeds; * corrected p < {alpha} in every seed; +/- direction of the 1-df test "
                           f"(positive-class predictions rise/fall with the feature) where p < {alpha}; "
                           f"(1 group): feature varies within one label class only"))
        grid.add_column("feature")
        models = list(dict.fromkeys(part["model"]))
        for m in models:
            grid.add_column(m, justify="right")
        for feature, rows in part.groupby("feature", sort=False):
            grid.add_row(_feature_name(feature, rows), *(_usage_cell(rows[rows["model"] == m], alpha) for m in models))
        console.print(grid)


def _feature_name(feature: str, rows) -> str:
    """The feature's row label with its exclusion and single-label-group marks."""
    name = str(feature)
    excluded = rows["excluded"].fillna("") if "excluded" in rows else None
    if excluded is not None and (excluded != "").all():
        name += f" ({excluded.iloc[0]}, not in family)"
    if "single_label_group" in rows and rows["single_label_group"].astype(bool).any():
        name += " (1 group)"
    return name


def _usage_cell(r, alpha: float) -> str:
    """Mean corrected CMI over seeds with '*' when every seed rejects and the agreed direction sign."""
    if not len(r):
        return "-"
    value = r["cmi_corrected_bits"].mean() if "cmi_corrected_bits" in r else r["cmi_bits"].mean()
    mark = "*" if r["p_adjusted"].notna().all() and (r["p_adjusted"] < alpha).all() else ""
    if "direction_pvalue" in r and (r["direction_pvalue"] < alpha).all() and r["direction"].nunique() == 1:
        mark += "+" if int(r["direction"].iloc[0]) > 0 else "-"
    return f"{value:+.4f}{mark}"


def probe_command(
    run_dir: Path = typer.Argument(..., help="Study output folder (holds results.csv).", show_default=False),
    artefact: str = typer.Option("patch,ruler,ink", "--artefact", help="Comma list of patch, ruler, ink."),
    position: int = typer.Option(None, "--position", help="Corner 0-3 (TL, TR, BL, BR) for patch/ink, edge 0-3 "
                                                          "(top, bottom, left, right) for the ruler; default random."),
    scale: float = typer.Option(1.0, "--scale", min=0.2, max=3.0, help="Artefact size factor."),
    colour: str = typer.Option(None, "--colour", help="R,G,B (0-255) of the patch or ink; default derm-synth's."),
    removal: bool = typer.Option(True, "--removal/--no-removal", help="Also fill artefacts in where masks exist."),
    split: str = typer.Option("test", "--split", help="Split whose images are probed."),
    bootstrap: int = typer.Option(PROBE_BOOTSTRAP, "--bootstrap", min=0, help="Bootstrap resamples for the CIs."),
) -> None:
    """Insert (or remove) artefacts in test images and report flip rate, probability and balanced-accuracy change."""
    from medattn.analysis.probes import PROBES_FILE, ProbeOptions, parse_artefacts, probe_table
    from medattn.analysis.usage import FEATURES_DIR

    opts = ProbeOptions(artefacts=parse_artefacts(artefact), position=position, scale=scale,
                        colour=parse_colour(colour), removal=removal, split=split, bootstrap=bootstrap)
    table = probe_table(run_dir, opts)
    print_probe_summary(table)
    console.print(f"probe table: {run_dir / FEATURES_DIR / PROBES_FILE} ({len(table)} rows)", highlight=False)


def parse_colour(text: str | None) -> tuple[int, int, int] | None:
    """(R, G, B) from 'R,G,B' with values 0-255; DataError otherwise."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3 or not all(p.isdigit() and int(p) <= 255 for p in parts):
        raise DataError(f"--colour {text}: give R,G,B with values 0-255, e.g. --colour 120,60,150")
    return int(parts[0]), int(parts[1]), int(parts[2])


def print_probe_summary(table) -> None:
    """Print one row per model x probe x artefact: flip rate, mean change of P(positive), balanced-accuracy change."""
    from medattn.analysis.probes import seed_summary

    if table.empty:
        console.print("nothing to probe (no run, or no test image without the artefact)")
        return
    grid = Table(title=escape("shortcut probes: one seed: value [95% interval: exact for the flip rate, bootstrap "
                              "over images otherwise]; several seeds: mean [two-level bootstrap over seeds and "
                              "the shared images; t interval over seeds for balanced accuracy]; sham: inpainting of "
                              "clean images, the control for remove"))
    for col in ("dataset", "model", "probe", "artefact", "seeds", "flip rate", "delta P(positive)",
                "delta balanced acc", "ID - OOD gap"):
        grid.add_column(col, justify="right" if col[0] in "fdsI" else "left")
    keys = ["dataset", "model", "probe", "artefact"]
    for key, rows in table.groupby(keys, sort=False):
        cells = [seed_summary(rows, c) for c in ("flip_rate", "delta_positive_prob", "delta_balanced_accuracy")]
        grid.add_row(*map(str, key), str(len(rows)), *cells, f"{rows['ood_gap'].mean():+.3f}")
    console.print(grid)


def scorecard_command(
    run_dirs: list[Path] = typer.Argument(..., help="Study output folders (each holds results.csv); e.g. one per "
                                                    "artefact type, each with a strong and a 0.5 dataset.",
                                          show_default=False),
    alpha: float = typer.Option(0.01, "--alpha", min=0.0, max=1.0, help="Level of the usage, probe and energy tests."),
    gap: float = typer.Option(0.05, "--gap", help="ID - OOD balanced-accuracy gap that flags a run."),
    artefact: str = typer.Option(None, "--artefact", help="Comma list of artefacts to score; default: the "
                                                          "planted ones (from the dataset specs)."),
    out: Path = typer.Option(None, "--out", help="Folder for the CSVs; default RUN_DIR/features (one folder) or "
                                                 "./scorecard (several)."),
) -> None:
    """Detector scorecard: detection rate where an artefact is a planted shortcut, false alarms at 0.5 (exact CIs)."""
    from medattn.analysis.scorecard import FLAGS_FILE, SCORECARD_FILE, ScorecardOptions, markdown, study_scorecard

    names = tuple(a.strip() for a in artefact.split(",") if a.strip()) if artefact else None
    flags, card = study_scorecard(run_dirs, ScorecardOptions(alpha=alpha, gap=gap, artefacts=names))
    if flags.empty:
        raise DataError(f"{', '.join(map(str, run_dirs))}: no detector output to score; run medattn features, "
                        f"medattn probe or medattn explain (or evaluate a test_ood split) first")
    folder = out or (run_dirs[0] / "features" if len(run_dirs) == 1 else Path("scorecard"))
    folder.mkdir(parents=True, exist_ok=True)
    flags.to_csv(folder / FLAGS_FILE, index=False)
    card.to_csv(folder / SCORECARD_FILE, index=False)
    console.print(markdown(card), highlight=False, markup=False)
    console.print(f"{len(flags)} flags over {flags.groupby(['study', 'dataset', 'model', 'seed']).ngroups} runs; "
                  f"wrote {folder / SCORECARD_FILE} and {folder / FLAGS_FILE}", highlight=False, markup=False)
