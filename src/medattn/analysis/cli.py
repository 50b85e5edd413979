"""`medattn features RUN_DIR` and `medattn probe RUN_DIR`: feature usage and shortcut probes of a finished study."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from medattn.errors import DataError

console = Console(width=None if sys.stdout.isatty() else 160)


def parse_epochs(text: str) -> list[int | str]:
    """Epoch list from '5,10,final' (DataError for anything else)."""
    out: list[int | str] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part == "final":
            out.append("final")
        elif part.isdigit() and int(part) > 0:
            out.append(int(part))
        else:
            raise DataError(f"--epochs: '{part}' is neither a positive epoch number nor 'final'; "
                            "e.g. --epochs 5,10,final")
    if not out:
        raise DataError("--epochs: empty; e.g. --epochs 5,10,final")
    return out


def features_command(
    run_dir: Path = typer.Argument(..., help="Study output folder (holds results.csv).", show_default=False),
    features: Path = typer.Option(None, "--features", help="Extra features: a CSV with an id column (id, image_id, "
                                                            "case_num or isic_id) and one column per feature."),
    id_column: str = typer.Option(None, "--id-column", help="The id column of --features (default: found by name)."),
    epochs: str = typer.Option("final", "--epochs", help="Comma list of saved epochs and/or 'final', e.g. 5,10,final."),
    split: str = typer.Option("test", "--split", help="Split whose predictions are tested."),
    correction: str = typer.Option("holm", "--correction", help="Across features: holm or bh (Benjamini-Hochberg)."),
    permutations: int = typer.Option(999, "--permutations", min=19, help="Permutations when tables are sparse."),
    bootstrap: int = typer.Option(200, "--bootstrap", min=0, help="Bootstrap resamples of the CMI interval."),
    alpha: float = typer.Option(0.05, "--alpha", min=0.0, max=1.0, help="Level for the 'used' mark in the summary."),
) -> None:
    """Test which features each model's predictions use (H0: prediction independent of feature given label)."""
    from medattn.analysis.usage import FEATURES_DIR, USAGE_FILE, UsageOptions, usage_table

    opts = UsageOptions(epochs=parse_epochs(epochs), split=split, features_file=str(features) if features else None,
                        id_column=id_column, correction=correction, permutations=permutations, bootstrap=bootstrap)
    table = usage_table(run_dir, opts, notify=lambda msg: console.print(f"notice: {msg}", highlight=False))
    print_usage_summary(table, alpha)
    console.print(f"usage table: {run_dir / FEATURES_DIR / USAGE_FILE} ({len(table)} rows)", highlight=False)


def print_usage_summary(table, alpha: float) -> None:
    """Print features x models: mean CMI (bits) over seeds, '*' where every seed rejects at `alpha` (corrected)."""
    if table.empty:
        console.print("no runs to test")
        return
    for (dataset, epoch), part in table.groupby(["dataset", "epoch"], sort=False):
        grid = Table(title=f"{dataset}, epoch {epoch}: CMI(prediction; feature | label) in bits, mean over seeds "
                           f"(* corrected p < {alpha} in every seed)")
        grid.add_column("feature")
        models = list(dict.fromkeys(part["model"]))
        for m in models:
            grid.add_column(m, justify="right")
        for feature, rows in part.groupby("feature", sort=False):
            cells = []
            for m in models:
                r = rows[rows["model"] == m]
                mark = "*" if len(r) and (r["p_adjusted"] < alpha).all() else ""
                cells.append(f"{r['cmi_bits'].mean():.4f}{mark}" if len(r) else "-")
            grid.add_row(str(feature), *cells)
        console.print(grid)
