"""`medattn pretrain ...`: self-supervised pretraining of a backbone on a dataset's training images."""

from __future__ import annotations

from pathlib import Path

import typer

from medattn.data.cli import CacheDir, DataDir, Download, context_from_options


def pretrain_command(
    data: str = typer.Option(..., "--data", help="Dataset spec; its train split is used, labels are not."),
    out: Path = typer.Option(Path("runs/pretrain"), "--out", help="Run directory: encoder.safetensors and "
                                                                  "pretrain.json (use it as init: ssl:OUT)."),
    backbone: str = typer.Option("resnet18", help="Backbone name (see `medattn models list`)."),
    stem: str = typer.Option("auto", help="auto, s1, s2 or standard: the stem the fine-tuned models will use."),
    method: str = typer.Option("simclr", help="simclr (two views of one image) or micle (two images of one "
                                              "group, e.g. a lesion or patient; needs the loader's group)."),
    epochs: int = typer.Option(20, help="Epochs over the training split."),
    batch_size: int = typer.Option(128, help="Images per batch (2 views each)."),
    lr: float = typer.Option(1e-3, help="AdamW learning rate (cosine decay)."),
    temperature: float = typer.Option(0.1, help="NT-Xent temperature."),
    precision: str = typer.Option("auto", help="auto (bf16 where the hardware is fast at it), fp32, bf16, fp16."),
    seed: int = typer.Option(0, help="Random seed."),
    data_dir: Path = DataDir, cache_dir: Path = CacheDir, download: bool = Download,
) -> None:
    """Pretrain a backbone contrastively (SimCLR or MICLe) and write an encoder that `init: ssl:OUT` loads."""
    from pydantic import ValidationError

    from medattn.data.dataset_spec import load_dataset
    from medattn.errors import SpecError
    from medattn.pretrain.run import PretrainConfig, pretrain

    try:
        cfg = PretrainConfig(backbone=backbone, stem=stem, method=method, epochs=epochs, batch_size=batch_size,
                             lr=lr, temperature=temperature, precision=precision)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise SpecError(f"--{'-'.join(map(str, err['loc'])).replace('_', '-')}: {err['msg']} "
                        f"(got {err.get('input')!r})") from None
    dataset = load_dataset(data, context_from_options(data_dir, cache_dir, download))
    record = pretrain(dataset, cfg, seed, out)
    first, last = record["history"][0]["loss"], record["history"][-1]["loss"]
    typer.echo(f"{method} on {record['train_images']} training images ({record['groups_with_several_images']} "
               f"groups with several images), {record['precision']}: loss {first:.3f} -> {last:.3f} in "
               f"{record['seconds']:.0f} s; encoder in {out}/ (init: ssl:{out})")
