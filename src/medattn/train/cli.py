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
    data_dir: Path = DataDir, cache_dir: Path = CacheDir, download: bool = Download,
) -> None:
    """Train one model on one dataset and write metrics, per-sample predictions and a checkpoint."""
    from medattn.data.dataset_spec import load_dataset
    from medattn.train.config import ModelConfig, TrainConfig
    from medattn.train.loop import train_run

    sections = _read_yaml(config) if config else {}
    model_cfg = _validated(ModelConfig, {**sections.get("model", {}), "backbone": backbone, "attention": attention},
                           "model")
    overrides = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "device": device, "precision": precision}
    train_cfg = _validated(TrainConfig, {**sections.get("train", {}),
                                         **{k: v for k, v in overrides.items() if v is not None}}, "train")
    dataset = load_dataset(data, context_from_options(data_dir, cache_dir, download))
    result = train_run(dataset, model_cfg, train_cfg, seed, out)
    _print_metrics(result.metrics, f"{backbone}+{attention} on {dataset.name}, seed {seed}, best epoch "
                                   f"{result.best_epoch}/{result.epochs_run}")
    hw = result.hardware
    console.print(f"train {result.timing['train_images_per_s']:.0f} images/s ({hw['precision']}, stem {hw['stem']}, "
                  f"{hw['threads']} thread(s)); results in {out}/", highlight=False)


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
