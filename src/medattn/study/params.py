"""Search-space parameters by name: which config fields can be tuned, and setting sampled values in the configs.

A name is a TrainConfig field path (`lr`, `augment.strength`) or `model.` plus a ModelConfig field
(`model.drop_rate`); the epoch budget and the model's identity are never tuned (a fair comparison).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from medattn.train.config import ModelConfig, TrainConfig

# Search-space names that would break fairness (the epoch budget) or make no sense to tune.
UNTUNABLE = {"epochs", "device", "progress", "save_epochs", "model.backbone", "model.attention",
             "model.placement", "model.attention_kwargs", "model.init"}


def apply_params(model: ModelConfig, train: TrainConfig, params: dict[str, Any]) -> tuple[ModelConfig, TrainConfig]:
    """Configs with search-space values set (`lr`, `augment.strength`, `model.drop_rate`, ...), validated."""
    model_d, train_d = model.model_dump(), train.model_dump()
    for name, value in params.items():
        target, parts = (model_d, name.split(".")[1:]) if name.startswith("model.") else (train_d, name.split("."))
        for part in parts[:-1]:
            target = target[part]
        target[parts[-1]] = value
    return ModelConfig.model_validate(model_d), TrainConfig.model_validate(train_d)


def is_tunable(name: str) -> bool:
    """Whether `name` is a TrainConfig field path (`lr`, `augment.strength`) or `model.<ModelConfig field>`."""
    parts = name.split(".")
    cls: type[BaseModel] = TrainConfig
    if parts[0] == "model":
        cls, parts = ModelConfig, parts[1:]
    for i, part in enumerate(parts):
        if not part or part not in cls.model_fields:
            return False
        ann = cls.model_fields[part].annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            if i == len(parts) - 1:
                return False
            cls = ann
        elif i != len(parts) - 1:
            return False
    return True


def tunable_names() -> str:
    """Return every name `is_tunable` accepts and the spec does not forbid, comma-separated."""
    names = []
    for field, info in TrainConfig.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            names += [f"{field}.{sub}" for sub in ann.model_fields]
        else:
            names.append(field)
    names += [f"model.{f}" for f in ModelConfig.model_fields]
    return ", ".join(n for n in names if n not in UNTUNABLE)
