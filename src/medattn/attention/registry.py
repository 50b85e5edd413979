"""The registry: mechanism name -> Mechanism, and `create_attention(name, channels, **options)`."""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from medattn.attention import augmented, channel, channel_spatial, global_context, local, mhsa, transformer  # noqa: F401
from medattn.attention.mechanism import Mechanism
from medattn.errors import ModelError

NONE = Mechanism(
    name="none", family="none", factory=None, placements=(), default_placement=None, source="medattn",
    paper="-", summary="the plain backbone, no attention module",
)

MECHANISMS: dict[str, Mechanism] = {
    m.name: m
    for m in [NONE, *channel.MECHANISMS, *channel_spatial.MECHANISMS, *global_context.MECHANISMS, *mhsa.MECHANISMS,
              *local.MECHANISMS, *augmented.MECHANISMS]
}
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


def check_options(mechanism: Mechanism, options: dict[str, Any]) -> None:
    """Refuse options the mechanism does not have, and context arguments only a placement may set."""
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
        if options:
            raise ModelError(f"attention 'none' takes no options, got {', '.join(options)}")
        return None
    user = {k: v for k, v in options.items() if k not in mechanism.context}
    check_options(mechanism, user)
    try:
        return mechanism.factory(channels, **options)
    except (TypeError, ValueError, AssertionError) as err:
        raise ModelError(f"attention '{mechanism.name}' with options {user} failed to build: {err}") from err
