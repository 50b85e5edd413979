"""Backbones with attention inserted at named places, ViT/Swin baselines, and their cost."""

from medattn.models.backbones import BACKBONES, get_backbone
from medattn.models.build import build_model

__all__ = ["BACKBONES", "build_model", "get_backbone"]
