"""`medattn explain RUN_DIR`: explain a study's final runs on one shared sample and write the map store.

Reads only the run directory (results table, study.json, each run's model.safetensors + model.json); loads
the dataset again from the spec string recorded in the results, never retrains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from medattn.data.imageset import ImageSet
from medattn.errors import DataError
from medattn.explain import store
from medattn.explain.maps import explain_model, index_table
from medattn.explain.sample import Sample, draw_sample, write_sample
from medattn.explain.scoring import score_run
from medattn.explain.spec import ExplainSpec
from medattn.explain.summary import metric_summary
from medattn.rundir import layout, writer
from medattn.rundir.reader import load_run, relative_path

RANDOM_SEED_OFFSET = 7919
PERMUTED_SEED_OFFSET = 104729
CHECK_IMAGES = 512  # training images the permuted-label model's balanced accuracy is measured on (a note)


@dataclass
class ExplainResult:
    """What an explain run wrote, and the notes on what was skipped and why."""

    runs: pd.DataFrame
    scores: pd.DataFrame
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunRef:
    """One final run to explain."""

    dataset: str
    model: str
    backbone: str
    attention: str
    seed: int
    path: Path


def final_runs(run_dir: Path, which: str) -> tuple[list[RunRef], pd.DataFrame, dict]:
    """The final runs (every seed, or the first of each model), the results table and study.json."""
    data = load_run(Path(run_dir))
    keys = data.results[["dataset", "model", "backbone", "attention", "seed"]].drop_duplicates()
    keys = keys.sort_values(["dataset", "model", "seed"], kind="stable")
    if which == "first-seed":
        keys = keys.groupby(["dataset", "model"], sort=False).head(1)
    refs = []
    for row in keys.itertuples(index=False):
        path = data.run_path(row.dataset, row.model, int(row.seed))
        if path is None or not (path / layout.CHECKPOINT).is_file():
            where = path / layout.CHECKPOINT if path is not None else "(no run directory recorded)"
            raise DataError(f"{run_dir}: run {row.dataset}/{row.model} seed {row.seed} has no checkpoint "
                            f"{where}; explanations need the trained weights (re-run `medattn study run`)")
        refs.append(RunRef(row.dataset, row.model, row.backbone, row.attention, int(row.seed), path))
    return refs, data.results, data.study


def load_datasets(results: pd.DataFrame, study: dict) -> dict[str, ImageSet]:
    """Every dataset of the study, reloaded from its recorded spec string."""
    from medattn.data.dataset_spec import load_context, load_dataset

    if "dataset_spec" not in results.columns:
        raise DataError("results table has no dataset_spec column: cannot reload the images to explain; "
                        "re-create it with `medattn study results SPEC`")
    ctx = load_context(study)
    specs = results.groupby("dataset", sort=False)["dataset_spec"].first()
    return {name: load_dataset(str(text), ctx) for name, text in specs.items()}


def load_samples(results: pd.DataFrame, study: dict, spec: ExplainSpec) -> dict[str, Sample]:
    """The shared sample of every dataset, drawn from the dataset reloaded from its recorded spec string."""
    return {name: draw_sample(data, spec.split, spec.samples, spec.seed)
            for name, data in load_datasets(results, study).items()}


def normalised(sample: Sample, sidecar: dict, device: torch.device) -> torch.Tensor:
    """The sample as the model saw its inputs: (x / 255 - mean) / std with the training set's statistics."""
    from medattn.train.augment import to_float

    mean = torch.tensor(sidecar["data"]["mean"], device=device)
    std = torch.tensor(sidecar["data"]["std"], device=device)
    return to_float(sample.images.to(device), mean, std)


def randomised_model(sidecar: dict, seed: int, device: torch.device) -> torch.nn.Module:
    """The run's architecture with fresh random weights (for the randomisation check)."""
    from medattn.train.checkpoint import build_from_sidecar

    torch.manual_seed(seed)
    model = build_from_sidecar(sidecar)
    _unit_norm_scales(model)
    return model.to(device).eval()


def _unit_norm_scales(model: torch.nn.Module) -> None:
    """Set every norm layer's scale to 1: timm zero-initialises the last norm of each residual branch, which
    would leave a randomised ResNet with silent branches and maps made by the shortcut path alone."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._NormBase | torch.nn.LayerNorm | torch.nn.GroupNorm):
                if getattr(module, "weight", None) is not None:
                    module.weight.fill_(1.0)


def balanced_accuracy(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean per-class recall of `model` on (x, labels)."""
    with torch.no_grad():
        predicted = model(x).argmax(1).cpu()
    labels = labels.cpu()
    return float(torch.stack([(predicted[labels == c] == c).float().mean() for c in labels.unique()]).mean())


def permuted_model(model: torch.nn.Module, data: ImageSet, sidecar: dict, spec: ExplainSpec, image_size: int,
                   device: torch.device) -> tuple[torch.nn.Module | None, str]:
    """The run's model fine-tuned on permuted training labels (randomisation.permuted_label_model), and a note
    with its balanced accuracy on the true training labels before and after (None without a train split)."""
    from medattn.explain.randomisation import permuted_label_model
    from medattn.train.augment import to_float

    if "train" not in data.split_names:
        return None, f"data randomisation skipped: {data.name} has no train split"
    train = torch.as_tensor(data.indices("train"), dtype=torch.long)
    mean = torch.tensor(sidecar["data"]["mean"], device=device)
    std = torch.tensor(sidecar["data"]["std"], device=device)

    def inputs(idx: torch.Tensor) -> torch.Tensor:
        rows = train[idx].to(data.images.device)
        return to_float(data.images[rows].to(device), mean, std, image_size)

    labels = data.labels[train.to(data.labels.device)]
    twin = permuted_label_model(model, inputs, labels, spec.data_randomisation_steps, spec.data_randomisation_lr,
                                spec.seed + PERMUTED_SEED_OFFSET)
    check = torch.arange(min(CHECK_IMAGES, len(train)))
    before = balanced_accuracy(model, inputs(check), labels[check])
    after = balanced_accuracy(twin, inputs(check), labels[check])
    return twin, (f"data randomisation: {spec.data_randomisation_steps} Adam steps at lr "
                  f"{spec.data_randomisation_lr:g} on permuted labels; balanced accuracy on {len(check)} training "
                  f"images (true labels) {before:.3f} -> {after:.3f}")


def explain_one(ref: RunRef, sample: Sample, spec: ExplainSpec, device: torch.device,
                cascade: bool = False, data: ImageSet | None = None) -> tuple[Path, pd.DataFrame, list[str]]:
    """Maps and scores of one run; writes the run's maps.npz and index.csv. With `data` (the dataset the sample
    was drawn from) and spec.data_randomisation, the data-randomisation check runs too (first seeds only)."""
    from medattn.train.checkpoint import load_run_model

    model, sidecar = load_run_model(ref.path / layout.CHECKPOINT)
    model = model.to(device)
    x = normalised(sample, sidecar, device)
    run = explain_model(model, ref.backbone, x, sample.labels, spec)
    index = index_table(run, sample.ids, sample.labels)
    maps = torch.cat([s.maps for s in run.sets]) if run.sets else torch.zeros(0, *x.shape[-2:])
    path = store.write_maps(ref.path, maps, index)
    random_model = randomised_model(sidecar, spec.seed + RANDOM_SEED_OFFSET, device) if spec.randomisation else None
    twin, notes = None, list(run.notes)
    notes += [f"{s.method} on {s.layer}: a {s.grid}x{s.grid} grid, coarser than min_grid {spec.min_grid}; its scores "
              "measure the grid as much as the model (marked in the report)" for s in run.sets
              if s.coarse and s.scored and s.target == spec.targets[0]]  # once per method
    if spec.randomisation and spec.data_randomisation and data is not None:
        twin, note = permuted_model(model, data, sidecar, spec, int(x.shape[-1]), device)
        notes.append(note)
    scores = score_run(model, random_model, ref.backbone, x, run, sample, spec, cascade, permuted_model=twin)
    scores.insert(0, "seed", ref.seed)
    scores.insert(0, "model", ref.model)
    scores.insert(0, "dataset", ref.dataset)
    return path, scores, [f"{ref.dataset}/{ref.model} seed {ref.seed}: {n}" for n in notes]


def explain_study(run_dir: Path, spec: ExplainSpec | None = None, study: dict | None = None) -> ExplainResult:
    """Explain the final runs of the study in `run_dir`; write sample(s), maps, runs.csv and scores.csv."""
    from medattn.train.loop import resolve_device

    spec = spec or ExplainSpec()
    run_dir = Path(run_dir)
    refs, results, recorded = final_runs(run_dir, spec.runs)
    datasets = load_datasets(results, study if study is not None else recorded)
    samples = {name: draw_sample(data, spec.split, spec.samples, spec.seed) for name, data in datasets.items()}
    device = resolve_device(spec.device)
    out = store.study_dir(run_dir)
    result = ExplainResult(runs=pd.DataFrame(), scores=pd.DataFrame())
    sample_files = {}
    for i, (name, sample) in enumerate(samples.items()):
        sample_files[name] = write_sample(sample, out / store.sample_name(name, i == 0))
        if sample.masks is None:
            result.notes.append(f"{name}: the dataset has no lesion masks; localisation scores skipped "
                                "(faithfulness and randomisation computed)")
    rows, scores, seen = [], [], set()
    for ref in refs:
        first = (ref.dataset, ref.model) not in seen  # the costly checks run on the first seed of each model
        seen.add((ref.dataset, ref.model))
        cascade = spec.randomisation and spec.cascade and first
        maps_path, run_scores, notes = explain_one(ref, samples[ref.dataset], spec, device, cascade,
                                                   datasets[ref.dataset] if first else None)
        result.notes += notes
        scores.append(run_scores)
        rows.append({"dataset": ref.dataset, "model": ref.model, "backbone": ref.backbone,
                     "attention": ref.attention, "seed": ref.seed, "run_dir": relative_path(ref.path, run_dir),
                     "maps": relative_path(maps_path, run_dir),
                     "sample": relative_path(sample_files[ref.dataset], run_dir)})
    result.runs = pd.DataFrame(rows, columns=list(store.RUNS_COLUMNS))
    result.scores = pd.concat(scores, ignore_index=True)[list(store.SCORES_COLUMNS)] if scores else pd.DataFrame(
        columns=list(store.SCORES_COLUMNS))
    writer.write_table(out / store.RUNS_FILE, result.runs)
    writer.write_table(out / store.SCORES_FILE, result.scores)
    writer.write_table(out / store.SUMMARY_FILE, metric_summary(result.scores))
    settings = store.write_settings(run_dir, spec.model_dump(mode="json"))
    result.files = [*sample_files.values(), out / store.RUNS_FILE, out / store.SCORES_FILE, out / store.SUMMARY_FILE,
                    settings]
    return result
