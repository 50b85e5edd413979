"""build_model: a timm backbone with an attention mechanism inserted, adapted to small medical images."""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from medattn.attention.registry import check_mechanism_options, get_mechanism
from medattn.errors import ModelError
from medattn.models import placement as placing
from medattn.models.backbones import BACKBONES, SMALL_IMAGE, get_backbone
from medattn.models.init import apply_init
from medattn.models.stem import resolve_stem

__all__ = ["BACKBONES", "SMALL_IMAGE", "build_model"]


def build_model(backbone: str, attention: str = "none", num_classes: int = 2, in_chans: int = 3,
                image_size: int = 224, small_stem: bool | None = None, drop_rate: float = 0.0,
                placement: dict | None = None, stem: str = "auto", init_from: str = "scratch",
                **attention_kwargs: Any) -> nn.Module:
    """Return a classifier: `backbone` with `attention` at `placement` (default: the mechanism's).

    Args:
        backbone: a registered backbone name (``medattn models list``).
        attention: a registered mechanism name or alias; ``"none"`` for the plain backbone.
        num_classes: classifier outputs.
        in_chans: input channels (1 for grey-scale images).
        image_size: input side in pixels; mechanisms that replace a convolution get their feature size from it.
        small_stem: override of the stem policy: True the stride-1 stem, False the standard stem, None: `stem`.
        drop_rate: dropout before the classifier.
        placement: where the mechanism goes (stages, where, blocks); None: the mechanism's default placement.
        stem: s1, s2, standard, or auto (the measured policy of :mod:`medattn.models.stem` for this size).
        init_from: scratch (random), file:PATH or ssl:RUN_DIR (a model's ``init``): the backbone's weights from a
            checkpoint (:mod:`medattn.models.init`); attention and head start fresh; the record of what was
            loaded is ``model.medattn_spec["init"]``.
        **attention_kwargs: options of the mechanism (``Mechanism.options()``); unknown ones are a ModelError.
    """
    entry = get_backbone(backbone)
    mechanism = get_mechanism(attention)
    _check_sizes(num_classes, in_chans, image_size)
    placing.check_keys(placement)
    if entry.adapter is None and mechanism.factory is not None:
        raise ModelError(f"backbone '{backbone}' is a transformer baseline and takes attention 'none' only; "
                         f"got '{attention}'")
    check_mechanism_options(mechanism, attention_kwargs)

    def create() -> nn.Module:
        return entry.create(num_classes, in_chans, image_size, drop_rate, small_stem, stem)

    model = create()
    resolved = None
    if mechanism.factory is not None:
        resolved = placing.resolve(mechanism, placement, entry.adapter, len(entry.adapter.stages(model)))
        placing.apply(model, entry.adapter, mechanism, resolved, attention_kwargs,
                      build_skeleton=lambda: (create(), image_size, in_chans))
    model.medattn_spec = {
        "backbone": backbone, "attention": mechanism.name, "image_size": image_size, "in_chans": in_chans,
        "placement": resolved.as_dict() if resolved else None, "options": dict(attention_kwargs),
        "stem": resolve_stem(image_size, small_stem, stem) if entry.adapter is not None else "patch",
    }
    if init_from != "scratch":
        model.medattn_spec["init"] = apply_init(model, init_from, plain=create).record()
    return model


def _check_sizes(num_classes: int, in_chans: int, image_size: int) -> None:
    for name, value, low in (("num_classes", num_classes, 1), ("in_chans", in_chans, 1), ("image_size", image_size, 8)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ModelError(f"{name}={value!r} must be an integer >= {low}")
