"""What the registry knows about one attention mechanism: its factory, family, paper and allowed places."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch.nn as nn

WHERE = ("after_conv", "replace_3x3", "stage_end")
FAMILIES = ("none", "channel", "channel+spatial", "context", "self-attention")
_NOT_OPTIONS = {"self", "device", "dtype"}


@dataclass(frozen=True)
class Mechanism:
    """A named mechanism: `factory(channels, **options, **context)` builds it; `placements` says where it fits.

    `context` names the keyword arguments the placement supplies (never the user): `out_channels`, `stride`
    and `feat_size` for modules that replace a convolution, plus `kernel_size`, `groups` and `bias` of the
    replaced convolution for the attention-augmented convolution. `default_placement` uses symbolic stages
    ('all', 'last', 'all_but_last', 'stride16') resolved per backbone.
    """

    name: str
    family: str
    paper: str
    factory: Callable[..., nn.Module] | None
    placements: tuple[str, ...]
    default_placement: dict[str, Any] | None
    summary: str
    source: str = "timm"  # 'timm': timm's own class; 'medattn': written here
    timm_counterpart: str | None = None
    context: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()

    def options(self) -> dict[str, Any]:
        """User-settable options of the factory and their defaults (context arguments excluded)."""
        if self.factory is None:
            return {}
        params = list(inspect.signature(self.factory).parameters.values())[1:]  # first one is `channels`
        found = {
            p.name: (None if p.default is inspect.Parameter.empty else p.default)
            for p in params
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in _NOT_OPTIONS | set(self.context)
        }
        return {k: _printable(v) for k, v in found.items()}


def _printable(value: Any) -> Any:
    """Classes given as defaults (activation layers) are shown by name."""
    return value.__name__ if isinstance(value, type) else value
