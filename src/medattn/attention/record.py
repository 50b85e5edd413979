"""Recording attention maps for one forward pass: `with record_attention(model) as maps: model(x)`.

Off by default and free when off: hooks and sinks exist only inside the `with` block, and nothing is kept
outside it. Each mechanism family registers how its maps are read (a forward hook on a timm module's gate,
or a sink attribute our own modules call); maps come out as channel gates (B, C), spatial gates (B, H, W)
or self-attention (B, heads, queries, keys), with the grids needed to put them back on the image.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

KINDS = ("channel", "spatial", "self")
Emit = Callable[..., None]
Extractor = Callable[[nn.Module, Emit], list]


@dataclass
class AttentionMap:
    """One module's map from one forward pass, with the geometry that places it on the input image."""

    module: str  # dotted path of the module in the model
    mechanism: str  # registry name of the mechanism ('se', 'cbam', 'mhsa', ...)
    kind: str  # 'channel' (B, C) | 'spatial' (B, H, W) | 'self' (B, heads, queries, keys)
    values: torch.Tensor
    grid: tuple[int, int] | None = None  # (H, W) of the feature map (spatial gates) or of the keys (self)
    query_grid: tuple[int, int] | None = None  # (H, W) of the queries (self-attention only)
    image_size: tuple[int, int] | None = None  # (H, W) of the model input in this forward pass
    part: str = ""  # which gate of a module with several ('channel' / 'spatial' of CBAM, BAM, GC)
    prefix_tokens: int = 0  # leading non-spatial tokens (a ViT class token) among queries and keys

    def to_image(self, size: tuple[int, int] | None = None) -> torch.Tensor:
        """(B, H, W) map at the image size: a spatial gate, or the attention each key receives (self)."""
        if self.kind == "channel":
            raise ValueError(f"{self.module}: a channel gate has no spatial layout; use .values (B, C)")
        size = size or self.image_size
        if self.kind == "spatial":
            grid = self.values
        else:
            keys = self.values[..., self.prefix_tokens:, self.prefix_tokens:].float().mean(dim=(1, 2))
            grid = keys.view(-1, *self.grid)
        return F.interpolate(grid[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]


class SinkHandle:
    """Detaches a sink from one of our modules when recording ends (same interface as a hook handle)."""

    def __init__(self, module: nn.Module):
        self.module = module

    def remove(self) -> None:
        """Stop the module from reporting maps."""
        self.module.attention_sink = None


def sink_extractor(module: nn.Module, emit: Emit) -> list:
    """Our modules report maps themselves through `attention_sink`; attach the emitter to it."""
    module.attention_sink = emit
    return [SinkHandle(module)]


_EXTRACTORS: dict[type, tuple[str, Extractor]] = {}


def register_extractor(module_type: type, mechanism: str, extractor: Extractor = sink_extractor) -> None:
    """Declare how maps of `module_type` (mechanism `mechanism`) are read while recording."""
    _EXTRACTORS[module_type] = (mechanism, extractor)


def _lookup(module: nn.Module) -> tuple[str, Extractor] | None:
    for cls in type(module).__mro__:
        if cls in _EXTRACTORS:
            return _EXTRACTORS[cls]
    return None


def _emitter(maps: list[AttentionMap], name: str, mechanism: str, state: dict, detach: bool) -> Emit:
    def emit(kind: str, values: torch.Tensor, **geometry) -> None:
        if kind not in KINDS:
            raise ValueError(f"map kind must be one of {KINDS}, got {kind!r}")
        values = values.detach() if detach else values
        maps.append(AttentionMap(name, mechanism, kind, values, image_size=state.get("image_size"), **geometry))

    return emit


@contextmanager
def record_attention(model: nn.Module, detach: bool = True) -> Iterator[list[AttentionMap]]:
    """Yield a list that fills with an AttentionMap per attention module (and gate) during forward passes."""
    maps: list[AttentionMap] = []
    state: dict = {}

    def note_input(_module, args):
        state["image_size"] = tuple(args[0].shape[-2:])

    handles = [model.register_forward_pre_hook(note_input)]
    try:
        for name, module in model.named_modules():
            found = _lookup(module)
            if found is not None:
                mechanism, extractor = found
                handles += extractor(module, _emitter(maps, name, mechanism, state, detach))
        yield maps
    finally:
        for handle in handles:
            handle.remove()


def gate_hook(emit: Emit, kind: str, part: str = "") -> Callable:
    """Forward hook on a gate activation: its output is the channel (B, C) or spatial (B, H, W) gate."""

    def hook(_module, _args, out):
        if kind == "channel":
            emit("channel", out.reshape(out.shape[0], -1), part=part)
        else:
            emit("spatial", out[:, 0], grid=tuple(out.shape[-2:]), part=part)

    return hook
