"""`medattn data ...`: inspect a dataset (splits, class counts, groups, concepts, cache)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from medattn.data.dataset_spec import LoadContext

app = typer.Typer(help="Inspect datasets.", no_args_is_help=True)
console = Console(width=None if sys.stdout.isatty() else 140)

DataDir = typer.Option(None, "--data-dir", help="Where dataset files live (default: $MEDATTN_DATA).")
CacheDir = typer.Option(None, "--cache-dir", help="Decoded-image cache (default: $MEDATTN_CACHE or ~/.cache/medattn).")
Download = typer.Option(False, "--download", help="Allow downloading missing public datasets.")


def context_from_options(data_dir: Path | None, cache_dir: Path | None, download: bool) -> LoadContext:
    """Return the LoadContext the --data-dir/--cache-dir/--download options describe."""
    from medattn.data.dataset_spec import LoadContext

    return LoadContext.from_env(data_dir, cache_dir, download)


@app.command("info")
def data_info(spec: str = typer.Argument(..., help="Dataset spec, e.g. medmnist:pneumoniamnist?size=28"),
              data_dir: Path = DataDir, cache_dir: Path = CacheDir, download: bool = Download) -> None:
    """Print splits, class counts, groups, concepts and the cache location of a dataset."""
    from medattn.data.dataset_spec import load_dataset

    data = load_dataset(spec, context_from_options(data_dir, cache_dir, download))
    table = Table(title=f"{data.name}: {data.images.shape[0]} images, {data.in_chans}x{data.image_size}x"
                        f"{data.image_size}, {data.num_classes} classes")
    table.add_column("split")
    table.add_column("images", justify="right")
    for name in data.class_names:
        table.add_column(name, justify="right")
    if data.group is not None:
        table.add_column("groups", justify="right")
    for split in data.split_names:
        mask = data.split == split
        row = [split, str(int(mask.sum())), *map(str, data.class_counts(split))]
        if data.group is not None:
            row.append(str(len(set(data.group[mask].tolist()))))
        table.add_row(*row)
    console.print(table)
    console.print(f"source: {data.source}")
    console.print(f"masks: {'yes' if data.masks is not None else 'no'}"
                  + (f"; artefact masks: {', '.join(data.artefact_masks)}" if data.artefact_masks else ""))
    if data.concepts is not None:
        console.print(f"concepts/metadata: {', '.join(map(str, data.concepts.columns))}")
    console.print(f"cache: {_cache_line(data.cache_path)}", soft_wrap=True, highlight=False)


def _cache_line(path: str | None) -> str:
    """The cache a loader recorded, with its size on disk, or why there is none."""
    if path is None:
        return "none (this loader reads its files directly, or no cache folder was given)"
    target = Path(path)
    files = [target] if target.is_file() else [p for p in target.rglob("*") if p.is_file()]
    return f"{path} ({sum(p.stat().st_size for p in files) / 1e6:.1f} MB)"
