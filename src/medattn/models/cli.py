"""`medattn models ...`: list attention mechanisms and backbones, and measure their cost."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from medattn.errors import ModelError

app = typer.Typer(help="Attention mechanisms, backbones and their cost.", no_args_is_help=True)
console = Console(width=None if sys.stdout.isatty() else 140)


@app.command("list")
def models_list() -> None:
    """Print every attention mechanism (family, paper, placements) and every backbone."""
    from medattn.models.describe import list_backbones, list_mechanisms

    table = Table(title="attention mechanisms")
    for col in ("name", "family", "paper", "placements", "default placement"):
        table.add_column(col)
    for m in list_mechanisms():
        default = m["default_placement"] or {}
        table.add_row(m["name"], m["family"], m["paper"], ", ".join(m["placements"]),
                      " ".join(f"{k}={v}" for k, v in default.items()))
    console.print(table)
    backbones = Table(title="backbones")
    for col in ("name", "kind", "timm model", "summary"):
        backbones.add_column(col)
    for b in list_backbones():
        backbones.add_row(b["name"], b["kind"], b["timm_name"], b["summary"])
    console.print(backbones)


@app.command("cost")
def models_cost(
    backbone: str = typer.Option(None, help="Backbone; omit for every backbone."),
    attention: str = typer.Option(None, help="Mechanism; omit for every mechanism."),
    size: int = typer.Option(224, help="Square input size in pixels."),
    in_chans: int = typer.Option(3, help="Input channels."),
    batch_size: int = typer.Option(16, help="Batch size of the throughput and memory measurement."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, ..."),
    precision: str = typer.Option("auto", help="auto (what training would use here), fp32, bf16, fp16."),
    csv: Path = typer.Option(None, help="Also write the table to this CSV file."),
) -> None:
    """Measure params, FLOPs, train/inference images/s and peak memory for one or every combination."""
    from medattn.models.cost import cost_table
    from medattn.models.describe import combinations

    known = combinations()
    if backbone and backbone not in {b for b, _ in known}:
        raise ModelError(f"--backbone: unknown backbone '{backbone}'; use one of "
                         f"{', '.join(sorted({b for b, _ in known}))}")
    if attention and attention not in {a for _, a in known}:
        raise ModelError(f"--attention: unknown mechanism '{attention}'; use one of "
                         f"{', '.join(sorted({a for _, a in known}))}")
    table = cost_table(image_size=size, in_chans=in_chans, backbones=[backbone] if backbone else None,
                       attentions=[attention] if attention else None, batch_size=batch_size,
                       device=None if device == "auto" else device, precision=precision)
    if table.empty:
        raise ModelError(f"--backbone {backbone} cannot hold --attention {attention} (transformer baselines "
                         f"take attention 'none')")
    if csv:
        table.to_csv(csv, index=False)
    out = Table(title=f"cost at {size} px, {in_chans} channel(s), batch {batch_size}, {table['device'].iloc[0]}")
    columns = {"backbone": "backbone", "attention": "attention", "stem": "stem", "precision": "precision",
               "params": "params (M)", "flops": "GFLOPs/img",
               "train_images_per_s": "train img/s", "infer_images_per_s": "infer img/s",
               "peak_memory_mb": "peak MiB", "train_time_vs_none": "time vs none"}
    scale = {"params": 1e-6, "flops": 1e-9}
    for name in columns.values():
        out.add_column(name, justify="right")
    for row in table.to_dict("records"):
        out.add_row(*(f"{row[c] * scale.get(c, 1):,.3g}" if isinstance(row[c], float | int) else str(row[c])
                      for c in columns))
    console.print(out)
