"""`medattn segment ...`: train one segmentation model on one dataset with masks; list the U-Nets and attentions."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from medattn.data.cli import CacheDir, DataDir, Download, context_from_options

app = typer.Typer(help="Segmentation: U-Nets with attention gates, zoo mechanisms, CA-Net-style, transformer.",
                  no_args_is_help=True)
console = Console(width=None if sys.stdout.isatty() else 140)


@app.command("train")
def train_command(
    data: str = typer.Option(..., "--data", help="Dataset spec with masks, e.g. synthetic:derm-synth?size=64 or "
                                                 "folder:ham10000?...&masks=masks&mask_pattern={id}_segmentation.png"),
    out: Path = typer.Option(Path("runs/segment"), "--out", help="Run directory for metrics, per-image scores, "
                                                                  "weights."),
    backbone: str = typer.Option("unet", help="U-Net kind (see `medattn segment models`)."),
    attention: str = typer.Option("none", help="none, gate, canet, transformer or a zoo mechanism (se, cbam, ...)."),
    where: str = typer.Option(None, help="Zoo mechanism placement: decoder, skip or both (default decoder)."),
    epochs: int = typer.Option(10, help="Maximum number of epochs."),
    seed: int = typer.Option(0, help="Random seed; a run is a pure function of (spec, seed)."),
    lr: float = typer.Option(1e-3, help="Learning rate."),
    batch_size: int = typer.Option(32, help="Batch size."),
    precision: str = typer.Option("auto", help="auto (bf16 where the hardware is fast at it), fp32, bf16."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, ..."),
    data_dir: Path = DataDir, cache_dir: Path = CacheDir, download: bool = Download,
) -> None:
    """Train one U-Net variant, keep the best validation Dice, write per-image Dice/IoU/HD95/ASD per split."""
    from pydantic import ValidationError

    from medattn.data.dataset_spec import load_dataset
    from medattn.errors import SpecError
    from medattn.segment.train import train_segmentation
    from medattn.train.cli import write_run_table
    from medattn.train.config import ModelConfig, TrainConfig

    try:
        model_cfg = ModelConfig(backbone=backbone, attention=attention,
                                placement=None if where is None else {"where": where})
        train_cfg = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, precision=precision, device=device,
                                progress=False)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise SpecError(f"--{'-'.join(map(str, err['loc']))}: {err['msg']}") from None
    dataset = load_dataset(data, context_from_options(data_dir, cache_dir, download))
    result = train_segmentation(dataset, model_cfg, train_cfg, seed, out, log=print)
    write_run_table(out, data, dataset.name, model_cfg, seed, result, data_dir, cache_dir)
    table = Table(title=f"{backbone}+{attention} on {dataset.name}, seed {seed}, best epoch "
                        f"{result.best_epoch}/{result.epochs_run} (means over images; hd95/asd in pixels)")
    names = list(next(iter(result.metrics.values())))
    table.add_column("split")
    for name in names:
        table.add_column(name, justify="right")
    for split, values in result.metrics.items():
        table.add_row(split, *(f"{values[n]:.4f}" for n in names))
    console.print(table)
    console.print(f"train {result.timing['train_images_per_s']:.0f} images/s ({result.hardware['precision']}); "
                  f"results in {out}/", highlight=False)


@app.command("gallery")
def gallery_command(
    run: Path = typer.Argument(..., help="A segmentation run's folder (model.safetensors, model.json)."),
    out: Path = typer.Option(None, "--out", help="PNG to write (default RUN/gallery-SPLIT.png)."),
    split: str = typer.Option("test", help="Split whose first N images are shown."),
    n: int = typer.Option(6, min=1, help="Number of images."),
    data_dir: Path = DataDir, cache_dir: Path = CacheDir, download: bool = Download,
) -> None:
    """Draw image, true and predicted outlines, lesion probability and the finest gate map on a fixed sample."""
    from medattn.segment.gallery import gallery

    path = gallery(run, out or run / f"gallery-{split}.png", split, n,
                   context_from_options(data_dir, cache_dir, download))
    console.print(f"gallery: {path}", highlight=False)


@app.command("models")
def models_command() -> None:
    """List the U-Net backbones and the attention variants a segmentation model accepts."""
    from medattn.segment.unet import SEG_ATTENTIONS, SEG_BACKBONES, zoo_mechanisms

    table = Table(title="segmentation models: backbone x attention")
    table.add_column("kind")
    table.add_column("name")
    table.add_column("what")
    for b in SEG_BACKBONES.values():
        table.add_row("backbone", b.name, b.summary)
    for name, what in SEG_ATTENTIONS.items():
        table.add_row("attention", name, what)
    for name in zoo_mechanisms():
        table.add_row("attention", name, "zoo mechanism in the decoder and/or on the skips (placement where=)")
    console.print(table)
