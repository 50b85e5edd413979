"""Typed, validated configuration of one training run (model + optimisation + augmentation)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from medattn.rundir.metrics import SELECTABLE_METRICS
from medattn.schema import Strict

StemChoice = Literal["auto", "s1", "s2", "standard"]  # auto: the measured policy (models/stem.py)


class AugmentConfig(Strict):
    """Batched on-device augmentation; `strength` scales every geometric and colour range at once."""

    hflip: bool = True
    vflip: bool = True
    rot90: bool = True
    rotate_deg: float = Field(15.0, ge=0, le=180)
    scale: float = Field(0.1, ge=0, lt=1)
    translate: float = Field(0.05, ge=0, lt=0.5)
    brightness: float = Field(0.1, ge=0, lt=1)
    contrast: float = Field(0.1, ge=0, lt=1)
    saturation: float = Field(0.1, ge=0, lt=1)
    strength: float = Field(1.0, ge=0, le=3)
    enabled: bool = True


class ModelConfig(Strict):
    """Which network to build: backbone, attention mechanism, where it goes, and its options."""

    backbone: str = "resnet18"
    attention: str = "none"
    placement: dict | None = None
    attention_kwargs: dict = Field(default_factory=dict)
    small_stem: bool | None = None  # override: true = stride-1 stem, false = standard stem, None = `stem`
    stem: StemChoice = "auto"  # auto: the measured policy (models/stem.py)
    drop_rate: float = Field(0.0, ge=0, lt=1)
    init: str = "scratch"  # scratch | file:PATH | ssl:RUN_DIR (models/init.py): the backbone's starting weights

    @model_validator(mode="after")
    def _one_stem_choice(self) -> ModelConfig:
        check_one_stem_choice(self.small_stem, self.stem)
        return self


def check_one_stem_choice(small_stem: bool | None, stem: str) -> None:
    """`small_stem` and `stem` are two ways to choose the stem: a model may use one of them."""
    if small_stem is not None and stem != "auto":
        raise ValueError(f"small_stem and stem both choose the stem; keep small_stem or stem='{stem}'")


class TrainConfig(Strict):
    """Optimisation, schedule, early stopping and output options of one run."""

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(128, ge=1)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    warmup_epochs: float = Field(1.0, ge=0)
    lr_milestones: list[int] = Field(default_factory=list)  # step schedule: lr x0.1 at these epochs; []: cosine
    class_weighted: bool = False
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    early_stop_patience: int | None = Field(None, ge=1)
    save_epochs: list[int] = Field(default_factory=list)
    eval_batch_size: int = Field(512, ge=1)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 where the hardware is fast at it
    channels_last: bool | Literal["auto"] = "auto"  # auto: the measured rule (runtime/memory_format.py)
    progress: bool = True
    select_on: Literal[SELECTABLE_METRICS] = "balanced_accuracy"  # validation metric whose best epoch is kept
