"""A model's cost (params, FLOPs, images/s, peak memory) as the plain floats a study stores per (dataset, model)."""

from __future__ import annotations

import logging
from typing import Any

from medattn.data.imageset import ImageSet
from medattn.train.config import ModelConfig

logger = logging.getLogger(__name__)


def measure_model_cost(model_cfg: ModelConfig, data: ImageSet) -> dict[str, float] | None:
    """Return params, flops, throughputs and peak memory from `medattn.models.cost`, or None if it failed."""
    from medattn.models.cost import measure_cost  # imported here: timm loads only when a cost is measured

    kwargs: dict[str, Any] = dict(backbone=model_cfg.backbone, attention=model_cfg.attention,
                                  image_size=data.image_size, in_chans=data.in_chans,
                                  num_classes=data.num_classes, placement=model_cfg.placement,
                                  small_stem=model_cfg.small_stem, stem=model_cfg.stem)
    try:
        cost = measure_cost(**kwargs, **model_cfg.attention_kwargs)
    except Exception as exc:  # cost is informative only: never fail a run over it
        logger.warning("warning: cost of %s+%s not measured: %s", model_cfg.backbone, model_cfg.attention, exc)
        return None
    return {k: float(v) for k, v in cost.items() if isinstance(v, (int, float))}
