"""Attention mechanisms for CNNs: a registry (name -> factory(channels, **options)) and map recording."""

from medattn.attention.mechanism import FAMILIES, WHERE, Mechanism
from medattn.attention.record import AttentionMap, record_attention
from medattn.attention.registry import (
    MECHANISMS,
    create_attention,
    get_mechanism,
    mechanism_names,
)

__all__ = [
    "FAMILIES",
    "MECHANISMS",
    "WHERE",
    "AttentionMap",
    "Mechanism",
    "create_attention",
    "get_mechanism",
    "mechanism_names",
    "record_attention",
]
