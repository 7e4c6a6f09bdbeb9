"""Model registry, weights loading and preprocessing."""

from __future__ import annotations

from .loaded import LoadedModel
from .preprocess import Preprocess
from .registry import ModelInfo, ModelSpec, get_spec, list_models, register

__all__ = ["LoadedModel", "ModelInfo", "ModelSpec", "Preprocess", "get_spec", "list_models", "register"]
