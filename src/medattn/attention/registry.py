"""The registry: mechanism name -> Mechanism, and `create_attention(name, channels, **options)`."""

from __future__ import annotations

import importlib
from typing import Any

import torch.nn as nn

import medattn.attention.transformer  # noqa: F401  (registers the ViT baselines' attention-map extractor)
from medattn.attention.mechanism import Mechanism
from medattn.errors import ModelError

NONE = Mechanism(
    name="none", family="none", factory=None, placements=(), default_placement=None, source="medattn",
    paper="-", summary="the plain backbone, no attention module",
)

# One module per mechanism family; each defines `MECHANISMS: list[Mechanism]`. A new family is one new file
# and one line here (see CONTRIBUTING.md).
MECHANISM_MODULES: tuple[str, ...] = (
    "medattn.attention.channel",
    "medattn.attention.channel_spatial",
    "medattn.attention.global_context",
    "medattn.attention.mhsa",
    "medattn.attention.local",
    "medattn.attention.augmented",
)


def _collect(modules: tuple[str, ...]) -> dict[str, Mechanism]:
    """Return name -> Mechanism for 'none' and every mechanism the modules define, in order; names must be unique."""
    found: dict[str, Mechanism] = {NONE.name: NONE}
    for module in modules:
        for mechanism in importlib.import_module(module).MECHANISMS:
            if mechanism.name in found:
                raise ValueError(f"{module}: attention mechanism '{mechanism.name}' is already registered")
            found[mechanism.name] = mechanism
    return found


MECHANISMS: dict[str, Mechanism] = _collect(MECHANISM_MODULES)
ALIASES: dict[str, str] = {alias: m.name for m in MECHANISMS.values() for alias in m.aliases}


def mechanism_names() -> list[str]:
    """Canonical names of every registered mechanism, 'none' first."""
    return list(MECHANISMS)


def get_mechanism(name: str) -> Mechanism:
    """The Mechanism registered under `name` (or an alias of it); ModelError naming the choices otherwise."""
    key = ALIASES.get(name, name)
    if key not in MECHANISMS:
        raise ModelError(f"unknown attention '{name}'; use one of {', '.join(MECHANISMS)}")
    return MECHANISMS[key]


def check_mechanism_options(mechanism: Mechanism, options: dict[str, Any]) -> None:
    """Refuse options the mechanism does not have, and context arguments only a placement may set."""
    if mechanism.factory is None and options:
        raise ModelError(f"attention 'none' takes no options; remove {', '.join(options)}")
    valid = mechanism.options()
    for key in options:
        if key in mechanism.context:
            raise ModelError(f"attention option '{key}' of '{mechanism.name}' is set by the placement; remove it")
        if key not in valid:
            choices = ", ".join(valid) or "none"
            raise ModelError(f"unknown option '{key}' for attention '{mechanism.name}'; valid options: {choices}")


def create_attention(name: str, channels: int, **options: Any) -> nn.Module | None:
    """Build mechanism `name` for `channels` input channels (None for 'none'); options as in `options()`."""
    mechanism = get_mechanism(name)
    if mechanism.factory is None:
        check_mechanism_options(mechanism, options)
        return None
    user = {k: v for k, v in options.items() if k not in mechanism.context}
    check_mechanism_options(mechanism, user)
    try:
        return mechanism.factory(channels, **options)
    except (TypeError, ValueError, AssertionError) as err:
        raise ModelError(f"attention '{mechanism.name}' with options {user} failed to build: {err}") from err
