"""The study plan: a spec expanded into named (dataset, model) units, their Optuna studies and slots."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medattn.data.dataset_spec import LoadContext, load_dataset, parse_spec
from medattn.data.imageset import ImageSet
from medattn.data.masks import require_masks
from medattn.errors import DataError, ModelError
from medattn.rundir import layout
from medattn.study.spec import StudySpec, init_label, with_train_overrides
from medattn.study.yamlmarks import PathKey
from medattn.train.config import ModelConfig, TrainConfig

# TrainConfig fields that do not change what a run computes (excluded from the plan fingerprint).
_COSMETIC_TRAIN = {"device", "progress", "eval_batch_size"}
_FINGERPRINTED_ELSEWHERE = {"select_on"}  # the spec's selection_metric, fingerprinted under its own name


@dataclass(frozen=True)
class DatasetVariant:
    """One dataset of the study: short name, loader spec string, where it was declared."""

    name: str
    spec: str
    origin: PathKey


@dataclass(frozen=True)
class ModelVariant:
    """One compared model: name, its ModelConfig, the placement's name, baseline flag, plain reference."""

    name: str
    config: ModelConfig
    placement_name: str
    is_baseline: bool
    reference: str | None
    origin: PathKey
    placement_origin: PathKey | None = None
    train: TrainConfig | None = None  # the study's train: with this model's overrides (None: no overrides)


@dataclass(frozen=True)
class Unit:
    """One (dataset, model) pair: a tuning study and a final-seeds study in the storage."""

    dataset: DatasetVariant
    model: ModelVariant
    tune_study: str
    final_study: str

    @property
    def key(self) -> str:
        """`dataset/model`, for messages."""
        return f"{self.dataset.name}/{self.model.name}"


@dataclass
class Plan:
    """Everything a worker needs: the spec, its units, seeds, output directory and storage URL."""

    spec: StudySpec
    datasets: list[DatasetVariant]
    models: list[ModelVariant]
    units: list[Unit]
    out_dir: Path
    storage_url: str
    fingerprints: dict[str, str] = field(default_factory=dict)

    @property
    def seeds(self) -> list[int]:
        """Final-stage seeds."""
        return self.spec.seed_list

    @property
    def artifact_root(self) -> Path:
        """Directory every artifact path stored in the study is relative to."""
        return self.out_dir

    def train_config(self, model: ModelVariant) -> TrainConfig:
        """The TrainConfig a model's runs start from: the study's, with the model's `train:` overrides, keeping the
        epoch with the best validation `selection_metric`."""
        return (model.train or self.spec.train).model_copy(update={"select_on": self.spec.selection_metric})

    def unit(self, dataset: str, model: str) -> Unit:
        """The unit for a dataset and model name."""
        for u in self.units:
            if u.dataset.name == dataset and u.model.name == model:
                return u
        raise KeyError(f"{dataset}/{model}")


def make_plan(spec: StudySpec, out_dir: str | Path | None = None, storage: str | None = None) -> Plan:
    """Expand a spec into units (no data loaded); SpecError for duplicate names. Overrides win over the spec."""
    datasets = expand_datasets(spec)
    models = expand_models(spec)
    out = Path(out_dir or spec.output or Path("runs") / spec.name).expanduser().absolute()
    url = resolve_storage(storage or spec.storage, out)
    units = [Unit(d, m, f"{spec.name}/{d.name}/{m.name}/tune", f"{spec.name}/{d.name}/{m.name}/final")
             for d in datasets for m in models]
    plan = Plan(spec, datasets, models, units, out, url)
    plan.fingerprints = {u.tune_study: fingerprint(plan, u) for u in units}
    return plan


def resolve_storage(storage: str | None, out_dir: Path) -> str:
    """Storage URL: an SQLAlchemy URL as given (env vars expanded), else `journal:PATH` (default in out_dir)."""
    if storage is None:
        return f"journal:{out_dir / layout.JOURNAL}"
    storage = os.path.expandvars(storage)
    if "://" in storage:
        return storage
    path = Path(storage.removeprefix("journal:")).expanduser().absolute()
    return f"journal:{path}"


def expand_datasets(spec: StudySpec) -> list[DatasetVariant]:
    """Named datasets; SpecError for unparsable specs or duplicate names."""
    out: list[DatasetVariant] = []
    seen: dict[str, PathKey] = {}
    for i, entry in enumerate(spec.datasets):
        origin: PathKey = ("datasets", i)
        try:
            parsed = parse_spec(entry.spec)
        except DataError as exc:
            raise spec.error(origin + ("spec",), str(exc)) from None
        name = entry.name or _default_dataset_name(parsed.target, parsed.options.get("name"))
        if name in seen:
            raise spec.error(origin, f"duplicate dataset name '{name}' (also {spec.where(seen[name])}); "
                                     f"give each dataset a distinct `name`")
        seen[name] = origin
        out.append(DatasetVariant(name, entry.spec, origin))
    return out


def _default_dataset_name(target: str, explicit: str | None) -> str:
    if explicit:
        return re.sub(r"[^A-Za-z0-9._+@=-]", "-", explicit)
    stem = Path(target.rstrip("/")).name or target
    stem = re.sub(r"\.npz$", "", stem)
    return re.sub(r"[^A-Za-z0-9._+@=-]", "-", stem).strip("-") or "dataset"


def expand_models(spec: StudySpec) -> list[ModelVariant]:
    """The grid, the explicit list and the baselines as named models; SpecError for duplicate names."""
    raw: list[tuple[str, ModelConfig, str, bool, PathKey, PathKey | None, TrainConfig | None]] = []
    grid = spec.models.grid
    if grid is not None:
        grid_train = None if grid.train is None else with_train_overrides(spec.train, grid.train)
        placements = _named_placements(grid.placements)
        attentions = list(dict.fromkeys(grid.attentions))
        if grid.include_plain and "none" not in attentions:
            attentions.insert(0, "none")
        for (i_i, init), b_i, backbone in _grid_inits(grid):
            for attention in attentions:
                origin: PathKey = (("models", "grid", "attentions", grid.attentions.index(attention))
                                   if attention in grid.attentions else ("models", "grid", "backbones", b_i))
                if len(grid.inits) > 1 or init != "scratch":
                    origin = ("models", "grid", "inits", i_i)
                for p_name, (p_i, placement) in placements.items():
                    if attention == "none" and p_i > 0:
                        break  # a plain backbone has no placement: one model, not one per placement
                    plain = attention == "none"
                    cfg = ModelConfig(backbone=backbone, attention=attention,
                                      placement=None if plain else placement,
                                      attention_kwargs={} if plain else grid.attention_kwargs,
                                      small_stem=grid.small_stem, stem=grid.stem, drop_rate=grid.drop_rate,
                                      init=init)
                    name = backbone if plain else f"{backbone}+{attention}"
                    if not plain and len(placements) > 1:
                        name += f"@{p_name}"
                    if len(grid.inits) > 1:
                        name += f".{init_label(init)}"
                    p_key = p_name if isinstance(grid.placements, dict) else p_i
                    p_origin = None if plain or placement is None else ("models", "grid", "placements", p_key)
                    raw.append((name, cfg, "" if plain else p_name, False, origin, p_origin, grid_train))
    for key, baseline in (("list", False), ("baselines", True)):
        entries = spec.models.items if key == "list" else spec.models.baselines
        for i, entry in enumerate(entries):
            cfg = entry.model_config_()
            default = entry.backbone if entry.attention == "none" else f"{entry.backbone}+{entry.attention}"
            name = entry.name or default
            p_name = "" if entry.placement is None else _placement_label(entry.placement)
            p_origin = None if entry.placement is None else ("models", key, i, "placement")
            train = None if entry.train is None else with_train_overrides(spec.train, entry.train)
            raw.append((name, cfg, p_name, baseline, ("models", key, i), p_origin, train))
    seen: dict[str, PathKey] = {}
    for name, _cfg, _p, _b, origin, _po, _t in raw:
        if name in seen:
            raise spec.error(origin, f"duplicate model name '{name}' (also {spec.where(seen[name])}); "
                                     f"give one of them a distinct `name`")
        seen[name] = origin
    configs = [(name, cfg, baseline, train or spec.train) for name, cfg, _p, baseline, _o, _po, train in raw]
    return [ModelVariant(name, cfg, p_name, baseline, _reference(cfg, baseline, train or spec.train, configs), origin,
                         p_origin, train)
            for name, cfg, p_name, baseline, origin, p_origin, train in raw]


def _grid_inits(grid) -> list[tuple[tuple[int, str], int, str]]:
    """(index, init), backbone index, backbone for every init x backbone of the grid (init outermost)."""
    return [((i, init), b, backbone) for i, init in enumerate(grid.inits) for b, backbone in enumerate(grid.backbones)]


def _named_placements(placements: Any) -> dict[str, tuple[int, dict | None]]:
    if isinstance(placements, dict):
        return {name: (i, p) for i, (name, p) in enumerate(placements.items())}
    out: dict[str, tuple[int, dict | None]] = {}
    for i, p in enumerate(placements):
        name = "default" if p is None else _placement_label(p)
        out[name if name not in out else f"{name}-{i}"] = (i, p)
    return out


def _placement_label(placement: dict[str, Any]) -> str:
    parts = []
    for key, value in placement.items():
        text = "-".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        parts.append(f"{key}={text}")
    return re.sub(r"[^A-Za-z0-9._+=-]", "", "_".join(parts)) or "custom"


def _reference(cfg: ModelConfig, baseline: bool, train: TrainConfig, raw: list) -> str | None:
    """The plain model (same backbone, stem, init and TrainConfig, no attention) an attention variant is compared
    against."""
    if baseline or cfg.attention == "none":
        return None
    for name, other, other_baseline, other_train in raw:
        if (not other_baseline and other.attention == "none" and other.backbone == cfg.backbone
                and other.small_stem == cfg.small_stem and other.stem == cfg.stem and other.init == cfg.init
                and other_train == train):
            return name
    return None


def fingerprint(plan: Plan, unit: Unit) -> str:
    """Canonical JSON of everything that determines a unit's runs (the seed list excepted)."""
    spec = plan.spec
    train = {k: v for k, v in plan.train_config(unit.model).model_dump(mode="json").items()
             if k not in _COSMETIC_TRAIN | _FINGERPRINTED_ELSEWHERE}
    tuning = spec.tuning.model_dump(mode="json")
    return json.dumps({"dataset": unit.dataset.spec, "model": unit.model.config.model_dump(mode="json"),
                       "train": train, "tuning": tuning, "selection_metric": spec.selection_metric},
                      sort_keys=True)


def spec_load_context(spec: StudySpec) -> LoadContext:
    """Where datasets are read from and cached for this spec."""
    return LoadContext.from_env(spec.data_dir, spec.cache_dir)


def validate_plan(plan: Plan) -> dict[str, ImageSet]:
    """Load every dataset and build every model once (cheaply); SpecError naming the line on any failure."""
    spec = plan.spec
    ctx = spec_load_context(spec)
    data: dict[str, ImageSet] = {}
    for d in plan.datasets:
        try:
            data[d.name] = load_dataset(d.spec, ctx)
        except DataError as exc:
            raise spec.error(d.origin + ("spec",), str(exc)) from None
        if spec.task == "segmentation":
            try:
                require_masks(data[d.name], f"dataset '{d.name}'")
            except DataError as exc:
                raise spec.error(d.origin + ("spec",), str(exc)) from None
        present = data[d.name].split_names
        missing = [s for s in ("train", "val") if s not in present]
        if missing:
            raise spec.error(d.origin + ("spec",), f"dataset '{d.name}' has no {'/'.join(missing)} split "
                                                   f"(splits: {', '.join(present)}); tuning needs train and val")
    checked: set[tuple] = set()
    for m in plan.models:
        for d in plan.datasets:
            ds = data[d.name]
            key = (m.name, ds.in_chans, ds.num_classes, ds.image_size)
            if key in checked:
                continue
            checked.add(key)
            check_model(spec, m, ds)
    return data


def check_model(spec: StudySpec, model: ModelVariant, data: ImageSet) -> None:
    """Build the model for this dataset's shape; SpecError at the attention's (or placement's) line if refused."""
    cfg = model.config
    if cfg.placement is not None:  # first without the placement, so a bad mechanism is blamed on its own line
        _try_build(spec, model, cfg.model_copy(update={"placement": None}), data, model.origin)
    _try_build(spec, model, cfg, data, model.placement_origin or model.origin)


def _try_build(spec: StudySpec, model: ModelVariant, cfg: ModelConfig, data: ImageSet, origin: PathKey) -> None:
    from medattn.models.build import build_model

    if spec.task == "segmentation":
        from medattn.segment.train import make_segmenter

        try:
            make_segmenter(cfg, data)
        except ModelError as exc:
            raise spec.error(origin, f"model '{model.name}': {exc}") from None
        return
    try:
        build_model(cfg.backbone, cfg.attention, num_classes=data.num_classes, in_chans=data.in_chans,
                    image_size=data.image_size, small_stem=cfg.small_stem, stem=cfg.stem, drop_rate=cfg.drop_rate,
                    placement=cfg.placement, init_from=cfg.init, **cfg.attention_kwargs)
    except ModelError as exc:
        raise spec.error(origin, f"model '{model.name}': {exc}") from None
    except TypeError as exc:
        raise spec.error(origin, f"model '{model.name}': {exc}; check attention_kwargs") from None
    except (ValueError, RuntimeError) as exc:
        raise spec.error(origin, f"model '{model.name}' cannot be built for {data.image_size}px "
                                 f"{data.in_chans}-channel images: {exc}") from None
