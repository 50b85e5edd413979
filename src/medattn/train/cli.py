"""`medattn train ...`: train one model on one dataset (a Typer function the main app mounts)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from medattn.data.cli import CacheDir, DataDir, Download, context_from_options
from medattn.errors import SpecError

console = Console(width=None if sys.stdout.isatty() else 140)


def train_command(
    data: str = typer.Option(..., "--data", help="Dataset spec, e.g. medmnist:pneumoniamnist?size=28"),
    out: Path = typer.Option(Path("runs/train"), "--out", help="Run directory for metrics, predictions, weights."),
    backbone: str = typer.Option("resnet18", help="Backbone name (see `medattn models list`)."),
    attention: str = typer.Option("none", help="Attention mechanism (see `medattn models list`)."),
    epochs: int = typer.Option(10, help="Maximum number of epochs."),
    seed: int = typer.Option(0, help="Random seed; a run is a pure function of (spec, seed)."),
    config: Path = typer.Option(None, "--config", help="YAML with `model:` and `train:` sections (flags win)."),
    lr: float = typer.Option(None, help="Learning rate."),
    batch_size: int = typer.Option(None, help="Batch size."),
    device: str = typer.Option(None, help="auto, cpu, cuda, cuda:1, ..."),
    precision: str = typer.Option(None, help="auto (bf16 where the hardware is fast at it), fp32, bf16, fp16."),
    init: str = typer.Option(None, "--init", help="Backbone weights: scratch, file:PATH (.pth/.safetensors) or "
                                                  "ssl:RUN_DIR (a `medattn pretrain` output)."),
    data_dir: Path = DataDir, cache_dir: Path = CacheDir, download: bool = Download,
) -> None:
    """Train one model on one dataset and write metrics, per-sample predictions and a checkpoint."""
    from medattn.data.dataset_spec import load_dataset
    from medattn.train.config import ModelConfig, TrainConfig
    from medattn.train.loop import train_run

    sections = _read_yaml(config) if config else {}
    model_flags = {"backbone": backbone, "attention": attention, **({"init": init} if init is not None else {})}
    model_cfg = _validated(ModelConfig, {**sections.get("model", {}), **model_flags}, "model")
    overrides = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "device": device, "precision": precision}
    train_cfg = _validated(TrainConfig, {**sections.get("train", {}),
                                         **{k: v for k, v in overrides.items() if v is not None}}, "train")
    dataset = load_dataset(data, context_from_options(data_dir, cache_dir, download))
    result = train_run(dataset, model_cfg, train_cfg, seed, out, log=_say)
    write_run_table(out, data, dataset.name, model_cfg, seed, result, data_dir, cache_dir)
    _print_metrics(result.metrics, f"{backbone}+{attention} on {dataset.name}, seed {seed}, best epoch "
                                   f"{result.best_epoch}/{result.epochs_run}")
    hw = result.hardware
    console.print(f"train {result.timing['train_images_per_s']:.0f} images/s ({hw['precision']}, stem {hw['stem']}, "
                  f"{hw['threads']} thread(s)); results in {out}/", highlight=False)


def _say(line: str) -> None:
    """Print a per-epoch progress line as it comes (output to a file or pipe; a terminal gets a bar)."""
    print(line, flush=True)


def write_run_table(out: Path, data_spec: str, dataset: str, model_cfg, seed: int, result, data_dir, cache_dir) -> None:
    """Make the train folder a one-run run directory: its results table (artifact folder '.') and study.json,
    so that explain, features, probe and report read it like a study's output."""
    import pandas as pd

    from medattn.provenance import provenance
    from medattn.rundir import layout, writer
    from medattn.rundir.columns import ID_COLUMNS, RUN_COLUMNS

    model = model_cfg.backbone if model_cfg.attention == "none" else f"{model_cfg.backbone}+{model_cfg.attention}"
    run = {"study": Path(out).name, "dataset": dataset, "dataset_spec": data_spec, "model": model,
           "backbone": model_cfg.backbone, "attention": model_cfg.attention, "is_baseline": False, "stage": "final",
           "seed": seed, "trial": 0, "status": result.status, "best_epoch": result.best_epoch,
           "epochs_run": result.epochs_run, "run_train_seconds": result.timing.get("train_seconds"),
           "run_train_images_per_s": result.timing.get("train_images_per_s"),
           "run_precision": result.hardware.get("precision"), "run_stem": result.hardware.get("stem"),
           "checkpoint": layout.CHECKPOINT, "artifact_dir": "."}
    rows = [{**run, "split": split, "metric": metric, "value": value, "predictions": layout.predictions_name(split)}
            for split, values in result.metrics.items() for metric, value in values.items()]
    writer.write_results(pd.DataFrame(rows, columns=[*ID_COLUMNS, *RUN_COLUMNS]), Path(out) / layout.RESULTS_CSV)
    study = {"name": Path(out).name, "data_dir": None if data_dir is None else str(data_dir),
             "cache_dir": None if cache_dir is None else str(cache_dir)}
    writer.write_study(out, study, provenance(), contrasts=[])


def _print_metrics(metrics: dict[str, dict[str, float]], title: str) -> None:
    table = Table(title=title)
    table.add_column("split")
    names = list(next(iter(metrics.values())))
    for name in names:
        table.add_column(name, justify="right")
    for split, values in metrics.items():
        table.add_row(split, *(f"{values[n]:.4f}" for n in names))
    console.print(table)


def _read_yaml(path: Path) -> dict:
    if not path.exists():
        raise SpecError(f"{path}: file not found")
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    unknown = set(content) - {"model", "train"}
    if not isinstance(content, dict) or unknown:
        raise SpecError(f"{path}: expected only `model:` and `train:` sections, found {sorted(unknown)}")
    return content


def _validated(cls, values: dict, section: str):
    try:
        return cls(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in (section, *err["loc"]))
        raise SpecError(f"{field}: {err['msg']} (got {err.get('input')!r})") from None
