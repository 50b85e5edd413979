"""Placement as data: which stages, where in the block, how many blocks -- validated, then applied to a CNN.

A placement is a dict with keys `stages` (1-based stage numbers, or 'all', 'last', 'all_but_last',
'stride16'), `where` ('after_conv': a gate on the residual branch after the block's convolutions;
'replace_3x3': self-attention instead of the block's spatial convolution; 'stage_end': a module after the
last block of the stage) and `blocks` (after_conv / replace_3x3: how many blocks per stage, counted from the
end of the stage, or 'all'; stage_end: how many modules in a row, default 1). Missing keys take the
mechanism's default placement, so `{"stages": [3, 4]}` moves a mechanism without restating the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from medattn.attention.mechanism import WHERE, Mechanism
from medattn.attention.registry import create_attention
from medattn.errors import ModelError
from medattn.models.backbones import CnnAdapter

KEYS = ("stages", "where", "blocks")
SYMBOLIC_STAGES = ("all", "last", "all_but_last", "stride16")


@dataclass(frozen=True)
class Placement:
    """A resolved placement: concrete 1-based stages, a place in the block, and a block count (None: all)."""

    stages: tuple[int, ...]
    where: str
    blocks: int | None

    def as_dict(self) -> dict[str, Any]:
        """The placement as the plain dict a spec holds."""
        return {"stages": list(self.stages), "where": self.where, "blocks": "all" if self.blocks is None else
                self.blocks}


def check_keys(placement: dict | None) -> dict:
    """The placement dict, refusing anything but a dict with keys among `stages`, `where`, `blocks`."""
    if placement is None:
        return {}
    if not isinstance(placement, dict):
        raise ModelError(f"placement must be a dict with keys {', '.join(KEYS)}; got {placement!r}")
    unknown = sorted(set(placement) - set(KEYS))
    if unknown:
        raise ModelError(f"unknown placement key(s) {', '.join(unknown)}; valid keys: {', '.join(KEYS)}")
    return placement


def resolve(mechanism: Mechanism, placement: dict | None, adapter: CnnAdapter, num_stages: int) -> Placement:
    """Merge `placement` over the mechanism's default and validate it for a backbone with `num_stages`."""
    merged = {**mechanism.default_placement, **check_keys(placement)}
    where = merged["where"]
    if where not in WHERE:
        raise ModelError(f"placement where='{where}' is not valid; use one of {', '.join(WHERE)}")
    if where not in mechanism.placements:
        raise ModelError(f"attention '{mechanism.name}' cannot go at where='{where}'; "
                         f"it can go at: {', '.join(mechanism.placements)}")
    stages = _stages(merged["stages"], adapter, num_stages)
    return Placement(stages, where, _blocks(merged["blocks"], where))


def _stages(value: Any, adapter: CnnAdapter, num_stages: int) -> tuple[int, ...]:
    if isinstance(value, str):
        symbolic = {"all": range(1, num_stages + 1), "last": [num_stages], "all_but_last": range(1, num_stages),
                    "stride16": [adapter.stride16_stage]}
        if value not in symbolic:
            raise ModelError(f"placement stages='{value}' is not valid; use a list of stage numbers "
                             f"1..{num_stages} or one of {', '.join(SYMBOLIC_STAGES)}")
        return tuple(symbolic[value])
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ModelError(f"placement stages={value!r} must be a non-empty list of stage numbers 1..{num_stages}")
    for s in value:
        if not isinstance(s, int) or isinstance(s, bool) or not 1 <= s <= num_stages:
            raise ModelError(f"placement stage {s!r} does not exist; this backbone has stages 1..{num_stages}")
    if len(set(value)) != len(value):
        raise ModelError(f"placement stages={list(value)} lists a stage twice; list each stage once")
    return tuple(sorted(value))


def _blocks(value: Any, where: str) -> int | None:
    if value in ("all", None):
        return 1 if where == "stage_end" else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ModelError(f"placement blocks={value!r} must be a positive integer or 'all'")
    return value


def apply(model: nn.Module, adapter: CnnAdapter, mechanism: Mechanism, placement: Placement,
          options: dict[str, Any], build_skeleton: Callable[[], tuple[nn.Module, int, int]]) -> None:
    """Insert the mechanism into `model` (in place) at every place `placement` names."""
    stages = adapter.stages(model)
    sizes = _conv_input_sizes(model, adapter, placement, stages, build_skeleton) \
        if placement.where == "replace_3x3" else {}
    for s in placement.stages:
        stage = stages[s - 1]
        if placement.where == "stage_end":
            channels = adapter.out_channels(stage[-1])
            for _ in range(placement.blocks):
                stage.append(create_attention(mechanism.name, channels, **options))
            continue
        for block in _chosen_blocks(stage, s, placement.blocks):
            if placement.where == "after_conv":
                merged = {**_unless_set(adapter.gate_defaults(mechanism.name, block), options), **options}
                adapter.set_gate(block, create_attention(mechanism.name, adapter.gate_channels(block), **merged))
            else:
                _replace_conv(block, adapter.conv_name(block), mechanism, options, sizes)


def _chosen_blocks(stage: nn.Sequential, number: int, count: int | None) -> list[nn.Module]:
    blocks = list(stage)
    if count is not None and count > len(blocks):
        raise ModelError(f"placement blocks={count} but stage {number} has only {len(blocks)} blocks; "
                         f"use blocks <= {len(blocks)} or 'all'")
    return blocks if count is None else blocks[-count:]


def _unless_set(defaults: dict, options: dict) -> dict:
    """Architecture defaults that the user has not overridden (rd_ratio and rd_channels count as one)."""
    width_set = "rd_ratio" in options or "rd_channels" in options
    return {k: v for k, v in defaults.items() if k not in options and not (width_set and k.startswith("rd_"))}


def _replace_conv(block: nn.Module, name: str, mechanism: Mechanism, options: dict, sizes: dict) -> None:
    conv = getattr(block, name)
    context = {"out_channels": conv.out_channels, "stride": conv.stride[0], "feat_size": sizes.get(id(conv)),
               "kernel_size": conv.kernel_size[0], "groups": conv.groups, "bias": conv.bias is not None}
    context = {k: v for k, v in context.items() if k in mechanism.context}
    setattr(block, name, create_attention(mechanism.name, conv.in_channels, **options, **context))


def _conv_input_sizes(model: nn.Module, adapter: CnnAdapter, placement: Placement, stages: list,
                      build_skeleton: Callable[[], tuple[nn.Module, int, int]]) -> dict[int, tuple[int, int]]:
    """id(conv) -> (H, W) of the input each replaced conv sees, from a shape-only pass of a meta-device twin."""
    targets = {id(getattr(block, adapter.conv_name(block)))
               for s in placement.stages for block in _chosen_blocks(stages[s - 1], s, placement.blocks)}
    names = {name: id(module) for name, module in model.named_modules() if id(module) in targets}
    with torch.device("meta"):
        skeleton, image_size, in_chans = build_skeleton()
    found: dict[int, tuple[int, int]] = {}
    handles = [skeleton.get_submodule(name).register_forward_pre_hook(
        lambda _m, args, key=key: found.__setitem__(key, tuple(args[0].shape[-2:])))
        for name, key in names.items()]
    with torch.no_grad():
        skeleton.eval()(torch.empty(1, in_chans, image_size, image_size, device="meta"))
    for handle in handles:
        handle.remove()
    return found  # the skeleton is dropped; its hooks go with it
