"""`medattn explain RUN_DIR`: maps and scores for a finished study's final runs."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.console import Console

from medattn.errors import SpecError

console = Console(width=None if sys.stdout.isatty() else 140)


def explain_command(
    run_dir: Path = typer.Argument(..., help="The study's output folder (the one holding results.csv)."),
    split: str = typer.Option("test", help="Split the shared sample is drawn from."),
    samples: int = typer.Option(16, help="Images in the shared, class-stratified sample."),
    methods: str = typer.Option("gradcam,attention,rollout",
                                help="Comma-separated: gradcam, gradcampp, scorecam, layercam, eigencam, "
                                     "intgrad (pixel resolution), attention, rollout."),
    runs: str = typer.Option("all", help="all (every final seed) or first-seed."),
    seed: int = typer.Option(0, help="Seed of the sample draw."),
    faithfulness: bool = typer.Option(True, help="Deletion / insertion AUC."),
    randomisation: bool = typer.Option(True, help="Model-randomisation sanity check."),
    cascade: bool = typer.Option(True, help="Cascading randomisation curve, top layer down (first seed of each "
                                            "model; needs --randomisation)."),
    data_randomisation: bool = typer.Option(True, help="Data-randomisation check: maps against those of a copy "
                                                       "fine-tuned on permuted training labels (first seed of each "
                                                       "model; needs --randomisation; costs "
                                                       "--data-randomisation-steps training steps per model)."),
    data_randomisation_steps: int = typer.Option(50, help="Adam steps (32 training images each) of the "
                                                          "permuted-label fine-tune."),
    data_randomisation_lr: float = typer.Option(1e-3, help="Learning rate of the permuted-label fine-tune."),
    layer: str = typer.Option("auto", help="CAM target layer: auto (the deepest stage with a grid of at least "
                                           "--min-grid) or a module name (layer3, layer2.1.conv2)."),
    upsample: str = typer.Option("bilinear", help="How CAM grids become pixels: bilinear or nearest."),
    min_grid: int = typer.Option(5, help="Smallest grid side a CAM layer may have (coarser: refused unless "
                                         "--force-layer)."),
    force_layer: bool = typer.Option(False, help="Accept a --layer coarser than --min-grid; its scores carry a "
                                                 "warning."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, ..."),
) -> None:
    """Explain every final run on one shared sample: CAMs, attention maps, rollout; score them; write the store."""
    from medattn.explain.runner import explain_study
    from medattn.explain.spec import ExplainSpec

    values = {"split": split, "samples": samples, "methods": [m.strip() for m in methods.split(",") if m.strip()],
              "runs": runs, "seed": seed, "faithfulness": faithfulness, "randomisation": randomisation,
              "cascade": cascade, "data_randomisation": data_randomisation,
              "data_randomisation_steps": data_randomisation_steps, "data_randomisation_lr": data_randomisation_lr,
              "layer": layer, "upsample": upsample, "min_grid": min_grid,
              "force_layer": force_layer,
              "device": device}
    try:
        spec = ExplainSpec(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise SpecError(f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg'].removeprefix('Value error, ')} "
                        f"(got {values.get(err['loc'][0])!r})") from None
    result = explain_study(run_dir, spec)
    for note in dict.fromkeys(result.notes):
        console.print(f"note: {note}")
    console.print(f"explained {len(result.runs)} run(s) on {spec.samples} image(s); {len(result.scores)} scores")
    for path in result.files:
        console.print(f"  {path}")
