"""The `medattn` command line: thin Typer commands that call the library and print with rich."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from medattn.errors import ModelError, SpecError, UserError
from medattn.explain.cli import explain_command
from medattn.report.cli import report_command
from medattn.study.cli import app as study_app

app = typer.Typer(help="Does adding attention to my CNN help on my medical images?", no_args_is_help=True,
                  pretty_exceptions_enable=False)
data_app = typer.Typer(help="Inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.command("report")(report_command)
app.command("explain")(explain_command)
app.add_typer(study_app, name="study")
models_app = typer.Typer(help="Attention mechanisms, backbones and their cost.", no_args_is_help=True)
app.add_typer(models_app, name="models")
console = Console(width=None if sys.stdout.isatty() else 140)

DataDir = typer.Option(None, "--data-dir", help="Where dataset files live (default: $MEDATTN_DATA).")
CacheDir = typer.Option(None, "--cache-dir", help="Decoded-image cache (default: $MEDATTN_CACHE or ~/.cache/medattn).")
Download = typer.Option(False, "--download", help="Allow downloading missing public datasets.")


def _context(data_dir: Path | None, cache_dir: Path | None, download: bool):
    from medattn.data.spec import LoadContext

    return LoadContext.from_env(data_dir, cache_dir, download)


@data_app.command("info")
def data_info(spec: str = typer.Argument(..., help="Dataset spec, e.g. medmnist:pneumoniamnist?size=28"),
              data_dir: Path = DataDir, cache_dir: Path = CacheDir, download: bool = Download) -> None:
    """Print splits, class counts, groups, concepts and the cache location of a dataset."""
    from medattn.data.spec import load_dataset

    data = load_dataset(spec, _context(data_dir, cache_dir, download))
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
    console.print(f"cache: {data.cache_path or 'none (loaded directly)'}")


@app.command()
def train(
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
    data_dir: Path = DataDir, cache_dir: Path = CacheDir, download: bool = Download,
) -> None:
    """Train one model on one dataset and write metrics, per-sample predictions and a checkpoint."""
    from medattn.data.spec import load_dataset
    from medattn.train.config import ModelConfig, TrainConfig
    from medattn.train.loop import train_run

    sections = _read_yaml(config) if config else {}
    model_cfg = _validated(ModelConfig, {**sections.get("model", {}), "backbone": backbone, "attention": attention},
                           "model")
    overrides = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "device": device}
    train_cfg = _validated(TrainConfig, {**sections.get("train", {}),
                                         **{k: v for k, v in overrides.items() if v is not None}}, "train")
    dataset = load_dataset(data, _context(data_dir, cache_dir, download))
    result = train_run(dataset, model_cfg, train_cfg, seed, out)
    _print_metrics(result.metrics, f"{backbone}+{attention} on {dataset.name}, seed {seed}, best epoch "
                                   f"{result.best_epoch}/{result.epochs_run}")
    console.print(f"train {result.timing['train_images_per_s']:.0f} images/s; results in {out}/")


@models_app.command("list")
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


@models_app.command("cost")
def models_cost(
    backbone: str = typer.Option(None, help="Backbone; omit for every backbone."),
    attention: str = typer.Option(None, help="Mechanism; omit for every mechanism."),
    size: int = typer.Option(224, help="Square input size in pixels."),
    in_chans: int = typer.Option(3, help="Input channels."),
    batch_size: int = typer.Option(16, help="Batch size of the throughput and memory measurement."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, ..."),
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
                       device=None if device == "auto" else device)
    if table.empty:
        raise ModelError(f"--backbone {backbone} cannot hold --attention {attention} (transformer baselines "
                         f"take attention 'none')")
    if csv:
        table.to_csv(csv, index=False)
    out = Table(title=f"cost at {size} px, {in_chans} channel(s), batch {batch_size}, {table['device'].iloc[0]}")
    columns = {"backbone": "backbone", "attention": "attention", "params": "params (M)", "flops": "GFLOPs/img",
               "train_images_per_s": "train img/s", "infer_images_per_s": "infer img/s",
               "peak_memory_mb": "peak MiB", "train_time_vs_none": "time vs none"}
    scale = {"params": 1e-6, "flops": 1e-9}
    for name in columns.values():
        out.add_column(name, justify="right")
    for row in table.to_dict("records"):
        out.add_row(*(f"{row[c] * scale.get(c, 1):,.3g}" if isinstance(row[c], float | int) else str(row[c])
                      for c in columns))
    console.print(out)


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


def main() -> None:
    """Entry point: run the Typer app, turning user errors into one line on stderr and exit code 2."""
    try:
        app(standalone_mode=False)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # click usage errors (typer vendors click)
            exc.show()
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
