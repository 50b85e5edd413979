"""The study spec: what to compare (datasets x models), how to tune it fairly, how often to repeat it.

A study spec is a YAML file validated by pydantic. Every user error (unknown key, bad value, duplicate
name, impossible search space) raises `SpecError` with one line `FILE:LINE: FIELD: problem; fix`.

    name: quickstart
    datasets:
      - spec: synthetic:derm-synth?n=600&size=32
        name: derm                         # optional; default: derived from the spec
    models:
      grid:                                 # backbones x attentions x placements
        backbones: [resnet18]
        attentions: [se, cbam]              # the plain backbone is added unless include_plain: false
        placements: {all: null}             # name -> placement dict (null = the zoo's default)
        inits: [scratch, ssl:runs/pre]      # optional factor: every model once per init (scratch | file:PATH |
                                            # ssl:RUN_DIR); names get .<label> (scratch, file stem, run dir name)
      list: []                              # explicit entries: {name, backbone, attention, placement, init, ...}
                                            # and `train: {precision: bf16}`: this model's train overrides
      baselines: [vit_tiny_patch16_224]     # reference models outside the grid (is_baseline = true)
    train: {epochs: 10, batch_size: 128}    # TrainConfig fields shared by every run
    tuning:
      trials: 16                            # the same budget for every (dataset, model)
      max_epochs: 10
      pruner: median                        # median | hyperband | successive_halving | none (or a mapping)
      search_space:                         # TrainConfig paths, or model.<ModelConfig field>
        lr: {low: 1.0e-4, high: 1.0e-2, log: true}
        augment.strength: {low: 0.0, high: 2.0}
    seeds: 5                                # final stage: the tuned config retrained with 5 seeds
    selection_metric: balanced_accuracy     # on the validation split
    storage: null                           # null: a journal file in `output`; or an SQLAlchemy URL
    output: runs/quickstart
    cost: true                              # measure params, FLOPs, images/s, memory per model
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from medattn.analysis.spec import FeaturesSpec
from medattn.errors import ModelError, SpecError
from medattn.explain.spec import ExplainSpec
from medattn.rundir.metrics import SELECTABLE_METRICS
from medattn.schema import Strict
from medattn.study.params import UNTUNABLE, apply_params, is_tunable, tunable_names
from medattn.study.validation_errors import validation_error
from medattn.study.yamlmarks import MarkedYaml, PathKey, format_path, load_marked, parse_marked
from medattn.train.config import ModelConfig, StemChoice, TrainConfig, check_one_stem_choice

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+@=-]*$")
DEFAULT_SEARCH_SPACE: dict[str, dict[str, Any]] = {
    "lr": {"low": 1e-4, "high": 1e-2, "log": True},
    "weight_decay": {"low": 1e-5, "high": 1e-1, "log": True},
    "augment.strength": {"low": 0.0, "high": 2.0},
    "model.drop_rate": {"low": 0.0, "high": 0.5},
}


def _check_name(value: str | None) -> str | None:
    if value is not None and not NAME_PATTERN.match(value):
        raise ValueError(f"name '{value}' may contain only letters, digits and . _ + @ = - "
                         f"(and must start with a letter or digit)")
    return value


def _check_init(value: str) -> str:
    from medattn.models.init import parse_init

    try:
        parse_init(value)
    except ModelError as exc:
        raise ValueError(str(exc)) from None
    return value


def init_label(init: str) -> str:
    """The short name of an init in model names: scratch, the checkpoint file's stem, or the ssl run's folder."""
    if init == "scratch":
        return "scratch"
    target = Path(init.partition(":")[2].rstrip("/"))
    name = target.stem if init.startswith("file:") else target.name
    return re.sub(r"[^A-Za-z0-9_=-]", "-", name).strip("-") or "init"


class DatasetEntry(Strict):
    """One dataset: a loader spec string (`kind:target?options`) and an optional short name."""

    spec: str
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"spec": value} if isinstance(value, str) else value

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str | None) -> str | None:
        return _check_name(value)


class ModelEntry(Strict):
    """One explicitly listed model (or baseline): a ModelConfig plus an optional name."""

    name: str | None = None
    backbone: str
    attention: str = "none"
    placement: dict[str, Any] | None = None
    attention_kwargs: dict[str, Any] = Field(default_factory=dict)
    small_stem: bool | None = None
    stem: StemChoice = "auto"
    drop_rate: float = Field(0.0, ge=0, lt=1)
    init: str = "scratch"  # scratch | file:PATH | ssl:RUN_DIR (models/init.py)
    train: TrainConfig | None = None  # overrides of the study's `train:` for this model (only the keys given)

    @field_validator("init")
    @classmethod
    def _valid_init(cls, value: str) -> str:
        return _check_init(value)

    @model_validator(mode="after")
    def _one_stem_choice(self):
        check_one_stem_choice(self.small_stem, self.stem)
        return self

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"backbone": value} if isinstance(value, str) else value

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str | None) -> str | None:
        return _check_name(value)

    def model_config_(self) -> ModelConfig:
        """The ModelConfig this entry describes."""
        return ModelConfig(backbone=self.backbone, attention=self.attention, placement=self.placement,
                           attention_kwargs=self.attention_kwargs, small_stem=self.small_stem, stem=self.stem,
                           drop_rate=self.drop_rate, init=self.init)


class GridSpec(Strict):
    """Backbones x attention mechanisms x placements; the plain backbones are included by default."""

    backbones: list[str] = Field(min_length=1)
    attentions: list[str] = Field(default_factory=lambda: ["none"], min_length=1)
    placements: list[dict[str, Any] | None] | dict[str, dict[str, Any] | None] = Field(
        default_factory=lambda: [None])
    include_plain: bool = True
    attention_kwargs: dict[str, Any] = Field(default_factory=dict)
    small_stem: bool | None = None
    stem: StemChoice = "auto"
    drop_rate: float = Field(0.0, ge=0, lt=1)
    inits: list[str] = Field(default_factory=lambda: ["scratch"], min_length=1)  # the initialisation factor
    train: TrainConfig | None = None  # overrides of the study's `train:` for every grid model

    @field_validator("inits")
    @classmethod
    def _valid_inits(cls, value: list[str]) -> list[str]:
        for init in value:
            _check_init(init)
        labels = [init_label(i) for i in value]
        if len(set(labels)) != len(labels):
            raise ValueError(f"inits {value} give the same label twice ({labels}); rename a file or run directory")
        return value

    @model_validator(mode="after")
    def _one_stem_choice(self):
        check_one_stem_choice(self.small_stem, self.stem)
        return self

    @field_validator("placements")
    @classmethod
    def _placement_names(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for key in value:
                _check_name(key)
        elif not value:
            raise ValueError("give at least one placement (null means the zoo's default placement)")
        return value


class ModelsSpec(Strict):
    """The compared models: a grid, an explicit list, and baselines (reference models outside the grid)."""

    model_config = {**Strict.model_config, "populate_by_name": True}

    grid: GridSpec | None = None
    items: list[ModelEntry] = Field(default_factory=list, alias="list")
    baselines: list[ModelEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _some_model(self) -> ModelsSpec:
        if self.grid is None and not self.items and not self.baselines:
            raise ValueError("no models: give models.grid, models.list or models.baselines")
        return self


class ParamSpec(Strict):
    """One search-space dimension: float/int range (optionally log-scaled) or a categorical choice."""

    type: Literal["float", "int", "categorical"] = "float"
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(None, gt=0)
    choices: list[None | bool | int | float | str] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ParamSpec:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty `choices` list")
            if self.low is not None or self.high is not None or self.log or self.step is not None:
                raise ValueError("a categorical parameter takes only `choices` (no low/high/log/step)")
            return self
        if self.choices is not None:
            raise ValueError(f"`choices` is only for type: categorical (this one is {self.type})")
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} parameter needs both `low` and `high`")
        if self.low > self.high:
            raise ValueError(f"low={self.low} is above high={self.high}; swap them")
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low > 0 (got low={self.low})")
        if self.log and self.step is not None:
            raise ValueError("`step` cannot be combined with log: true")
        if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError(f"an int parameter needs integer bounds (got {self.low}..{self.high})")
        return self

    def values_to_check(self) -> list[Any]:
        """Extreme values (or every choice) that must all give valid configs."""
        if self.type == "categorical":
            return list(self.choices or [])
        cast = int if self.type == "int" else float
        return [cast(self.low), cast(self.high)]


class PrunerSpec(Strict):
    """Early stopping of unpromising tuning trials (Optuna pruners), reported once per epoch."""

    type: Literal["median", "hyperband", "successive_halving", "none"] = "median"
    startup_trials: int = Field(4, ge=0)  # median: trials finished before pruning starts
    warmup_epochs: int = Field(1, ge=0)  # median: the first epochs of a trial are never pruned
    min_epochs: int = Field(1, ge=1)  # hyperband / successive_halving: epochs before the first cut
    reduction_factor: int = Field(3, ge=2)  # hyperband / successive_halving: 1/factor survive each cut

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value


class TuningSpec(Strict):
    """The tuning stage: one Optuna study per (dataset, model), identical budget and search space."""

    trials: int = Field(16, ge=0)
    max_epochs: int | None = Field(None, ge=1)
    sampler: Literal["tpe", "random"] = "tpe"
    startup_trials: int = Field(5, ge=1)  # TPE: random trials before the model kicks in
    seed: int = Field(0, ge=0)  # sampler seed and the training seed of every tuning trial
    pruner: PrunerSpec = Field(default_factory=PrunerSpec)
    search_space: dict[str, ParamSpec] = Field(
        default_factory=lambda: {k: ParamSpec(**v) for k, v in DEFAULT_SEARCH_SPACE.items()})


class WorkerSpec(Strict):
    """Worker behaviour: heartbeats, when a silent worker's trial is taken over, how often to retry."""

    heartbeat_interval: int = Field(10, ge=1)  # seconds between heartbeats of a running trial
    grace_period: int = Field(60, ge=2)  # seconds without heartbeat before a trial is failed and retried
    max_retries: int = Field(2, ge=0)  # retries of one run after crashes before it counts as failed
    poll_interval: float = Field(2.0, gt=0)  # seconds an idle worker waits before looking again

    @model_validator(mode="after")
    def _grace_above_interval(self) -> WorkerSpec:
        if self.grace_period <= self.heartbeat_interval:
            raise ValueError(f"grace_period ({self.grace_period}s) must exceed heartbeat_interval "
                             f"({self.heartbeat_interval}s), e.g. 3x")
        return self


class StudySpec(Strict):
    """A whole study: datasets x models, shared training defaults, tuning, final seeds, storage."""

    name: str
    datasets: list[DatasetEntry] = Field(min_length=1)
    models: ModelsSpec
    train: TrainConfig = Field(default_factory=TrainConfig)
    tuning: TuningSpec = Field(default_factory=TuningSpec)
    seeds: int | list[int] = 5
    selection_metric: Literal[SELECTABLE_METRICS] = "balanced_accuracy"
    task: Literal["classification", "segmentation"] = "classification"  # segmentation: U-Nets, masks, Dice
    storage: str | None = None
    output: str | None = None
    data_dir: str | None = None
    cache_dir: str | None = None
    cost: bool = True  # measure params, FLOPs, throughput, memory once per (dataset, model)
    workers: WorkerSpec = Field(default_factory=WorkerSpec)
    explain: ExplainSpec | None = None  # explanations of the final runs, computed before the report
    features: FeaturesSpec | None = None  # feature usage and shortcut probes at the end of the study

    _marks: MarkedYaml | None = PrivateAttr(None)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str | None) -> str | None:
        return _check_name(value)

    @model_validator(mode="after")
    def _features_epochs_saved(self) -> StudySpec:
        from medattn.analysis.spec import unsaved_epochs

        missing = unsaved_epochs(self.features, self.train.save_epochs) if self.features else []
        if missing:
            raise ValueError(f"features.epochs {missing} are not saved; add them to train.save_epochs")
        return self

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: int | list[int]) -> int | list[int]:
        if isinstance(value, int):
            if value < 1:
                raise ValueError("need at least one seed")
        else:
            if not value:
                raise ValueError("seeds: empty list; give a number of seeds or a list of seed values")
            if len(set(value)) != len(value) or min(value) < 0:
                raise ValueError(f"seeds {value}: seed values must be distinct and >= 0")
        return value

    @property
    def selection_key(self) -> str:
        """The validation metric runs are tuned and kept on: `selection_metric`, or Dice for segmentation."""
        return "dice" if self.task == "segmentation" else self.selection_metric

    @property
    def seed_list(self) -> list[int]:
        """The final-stage seeds."""
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    @property
    def tuning_epochs(self) -> int:
        """Epoch budget of one tuning trial."""
        return self.tuning.max_epochs or self.train.epochs

    @property
    def source(self) -> str:
        """The file the spec came from (or '<spec>')."""
        return self._marks.source if self._marks else "<spec>"

    def where(self, path: PathKey) -> str:
        """`file:line` of a field, for error messages."""
        return self._marks.where(path) if self._marks else self.source

    def error(self, path: PathKey, message: str) -> SpecError:
        """A SpecError `FILE:LINE: FIELD: message` for the field at `path`."""
        return SpecError(f"{self.where(path)}: {format_path(path)}: {message}")


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a study spec file; SpecError naming file, line and field on any problem."""
    marks = load_marked(path)
    return spec_from_marked(marks, default_name=Path(path).stem)


def parse_spec_text(text: str, source: str = "<spec>", default_name: str = "study") -> StudySpec:
    """Validate a study spec given as YAML text (see `load_spec`)."""
    return spec_from_marked(parse_marked(text, source), default_name)


def spec_from_marked(marks: MarkedYaml, default_name: str) -> StudySpec:
    """Validate already-parsed YAML (with line marks) into a StudySpec."""
    data = marks.data
    if not isinstance(data, dict):
        raise SpecError(f"{marks.where(())}: a study spec must be a mapping with at least `datasets` and "
                        f"`models`; see examples/quickstart.yaml")
    data = dict(data)
    data.setdefault("name", re.sub(r"[^A-Za-z0-9._+@=-]", "-", default_name) or "study")
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, marks, StudySpec) from None
    spec._marks = marks
    _check_search_space(spec)
    _check_train_overrides(spec)
    _check_storage(spec)
    return spec


# Train fields one model may not change: the epoch budget, the checkpoints the feature analysis reads, the
# selection metric (the study's) and the device the data sits on are the same for every model of a study.
STUDY_WIDE_TRAIN = ("epochs", "save_epochs", "select_on", "device")


def train_overrides(override: TrainConfig | None) -> dict[str, Any]:
    """The fields a model's `train:` block sets, as dotted names (`precision`, `augment.strength`) -> value."""
    given = override.model_dump(exclude_unset=True) if override is not None else {}
    return {f"{k}.{sub}" if isinstance(v, dict) else k: w
            for k, v in given.items() for sub, w in (v.items() if isinstance(v, dict) else [(None, v)])}


def with_train_overrides(base: TrainConfig, override: TrainConfig | None) -> TrainConfig:
    """The study's TrainConfig with a model's `train:` overrides set (nested blocks merged key by key)."""
    merged = base.model_dump()
    for name, value in train_overrides(override).items():
        *parents, leaf = name.split(".")
        target = merged
        for part in parents:
            target = target[part]
        target[leaf] = value
    return TrainConfig.model_validate(merged)


def model_entries(spec: StudySpec) -> list[tuple[PathKey, GridSpec | ModelEntry]]:
    """Every model block of the spec with its document path: the grid, then list entries, then baselines."""
    models = spec.models
    grid = [(("models", "grid"), models.grid)] if models.grid is not None else []
    return [*grid, *((("models", "list", i), e) for i, e in enumerate(models.items)),
            *((("models", "baselines", i), e) for i, e in enumerate(models.baselines))]


def _check_train_overrides(spec: StudySpec) -> None:
    for origin, entry in model_entries(spec):
        for name in train_overrides(entry.train):
            path = (*origin, "train", *name.split("."))
            if name.split(".")[0] in STUDY_WIDE_TRAIN:
                raise spec.error(path, f"'{name}' is the same for every model of a study; set it in the "
                                       f"study's train: block")
            if name in spec.tuning.search_space:
                raise spec.error(path, f"'{name}' is tuned (it is in tuning.search_space), so this value would "
                                       f"be replaced; remove it here or from the search space")


def _check_search_space(spec: StudySpec) -> None:
    base_model = ModelConfig()
    for name, param in spec.tuning.search_space.items():
        path = ("tuning", "search_space", name)
        if name in UNTUNABLE:
            raise spec.error(path, f"'{name}' cannot be tuned (the epoch budget and the model are fixed for "
                                   f"a fair comparison); remove it")
        if not is_tunable(name):
            raise spec.error(path, f"unknown parameter '{name}'; use a TrainConfig field ({tunable_names()})")
        for value in param.values_to_check():
            try:
                apply_params(base_model, spec.train, {name: value})
            except ValidationError as exc:
                first = exc.errors()[0]
                raise spec.error(path, f"value {value!r} is not valid for {name}: {first['msg']}; "
                                       f"narrow the range") from None


def _check_storage(spec: StudySpec) -> None:
    if spec.storage is None or "://" not in spec.storage:
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(os.path.expandvars(spec.storage))
    except (ArgumentError, ValueError) as exc:
        raise spec.error(("storage",), f"not a valid database URL ({exc}); e.g. "
                                       f"postgresql://user:pass@host/db, or null for a journal file") from None
