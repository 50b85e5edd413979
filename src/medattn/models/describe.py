"""What can be built: every mechanism (family, paper, placements, options) and every backbone, as plain dicts."""

from __future__ import annotations

from typing import Any

from medattn.attention.registry import MECHANISMS
from medattn.models.backbones import BACKBONES


def list_mechanisms() -> list[dict[str, Any]]:
    """One dict per registered mechanism: name, family, paper, placements, default placement, options, source."""
    return [
        {
            "name": m.name,
            "family": m.family,
            "paper": m.paper,
            "placements": list(m.placements),
            "default_placement": dict(m.default_placement) if m.default_placement else None,
            "summary": m.summary,
            "source": m.source,
            "timm_counterpart": m.timm_counterpart,
            "aliases": list(m.aliases),
            "options": m.options(),
        }
        for m in MECHANISMS.values()
    ]


def list_backbones() -> list[dict[str, Any]]:
    """One dict per registered backbone: name, kind ('cnn' or 'transformer'), timm model, summary."""
    return [{"name": b.name, "kind": b.kind, "timm_name": b.timm_name, "summary": b.summary}
            for b in BACKBONES.values()]


def combinations() -> list[tuple[str, str]]:
    """Every registered (backbone, attention) pair with its default placement; transformers with 'none' only."""
    return [(b.name, m) for b in BACKBONES.values() for m in MECHANISMS
            if b.kind == "cnn" or m == "none"]
