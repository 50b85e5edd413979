"""What to explain and how to score it: the `explain:` block of a study spec and the options of `medattn explain`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from medattn.schema import Strict

# Defaults of the scoring functions live here, so that reading a study spec imports neither torch nor timm
DEFAULT_METHODS = ("gradcam", "attention", "rollout")
DEFAULT_STEPS = 16  # deletion / insertion steps
DEFAULT_TOLERANCE = 1  # pointing game, pixels
DEFAULT_TOP_FRACTION = 0.2  # top-k region for IoU
DEFAULT_DATA_STEPS, DEFAULT_DATA_LR = 50, 1e-3  # permuted-label fine-tune (explain/randomisation.py)
DEFAULT_MIN_GRID = 5  # layer: auto takes the deepest layer at least this many cells a side (explain/targets.py)


class ExplainSpec(Strict):
    """Explanations of a study's final runs on one fixed, class-stratified sample of images."""

    enabled: bool = True
    split: str = "test"
    samples: int = Field(16, ge=1)  # images in the shared sample
    seed: int = Field(0, ge=0)  # seed of the sample draw (and of the randomised model)
    methods: list[str] = Field(default_factory=lambda: list(DEFAULT_METHODS), min_length=1)
    runs: Literal["all", "first-seed"] = "all"  # every final seed, or the first seed of each model
    targets: list[Literal["predicted", "true"]] = Field(default_factory=lambda: ["predicted", "true"], min_length=1)
    faithfulness: bool = True  # deletion / insertion AUC
    randomisation: bool = True  # Adebayo et al. model-randomisation check
    cascade: bool = True  # cascading randomisation curve (first seed of each model; needs randomisation)
    # Adebayo et al.'s data randomisation: a copy fine-tuned on permuted training labels (explain/randomisation.py),
    # first seed of each model; needs randomisation; costs data_randomisation_steps training steps per model
    data_randomisation: bool = True
    data_randomisation_steps: int = Field(DEFAULT_DATA_STEPS, ge=1)  # Adam steps of 32 training images
    data_randomisation_lr: float = Field(DEFAULT_DATA_LR, gt=0)
    steps: int = Field(DEFAULT_STEPS, ge=2, le=256)  # deletion / insertion steps
    baseline: Literal["blur", "mean"] = "blur"
    tolerance: int = Field(DEFAULT_TOLERANCE, ge=0)  # pointing game, pixels
    top_fraction: float = Field(DEFAULT_TOP_FRACTION, gt=0, le=1)  # top-k region for IoU
    layer: str = Field("auto", min_length=1)  # CAM target layer: auto, or a module name (layer3, layer2.1.conv2)
    min_grid: int = Field(DEFAULT_MIN_GRID, ge=1)  # coarser layers are refused unless force_layer
    force_layer: bool = False  # accept a named layer coarser than min_grid (its scores carry a warning)
    upsample: Literal["bilinear", "nearest"] = "bilinear"  # CAM grid -> pixels
    batch_size: int = Field(32, ge=1)
    device: str = "auto"

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, value: list[str]) -> list[str]:
        from medattn.explain.cam import METHODS

        bad = [m for m in value if m not in METHODS]
        if bad:
            raise ValueError(f"unknown explanation method(s) {', '.join(bad)}; use some of {', '.join(METHODS)}")
        return list(dict.fromkeys(value))
