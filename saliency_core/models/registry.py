"""The model registry: id -> how to build it, its task, preprocessing and CAM layer candidates."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UnknownModel
from .preprocess import Preprocess
from .weights import cached_file_for

ReshapeFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build, feed and explain one registered model."""

    id: str
    task: str
    title: str
    build: Callable[[Any], nn.Module]
    layers: tuple[str, ...]
    preprocess: Preprocess
    categories: Callable[[], Sequence[str]]
    weights_enum: Callable[[], Any] | None = None
    bundled_weights: Callable[[], Path] | None = None
    description: str = ""
    cam_head: str | None = None
    gap_activation: str | None = None
    reshape: Callable[[str], ReshapeFn | None] = field(default=lambda _layer: None)
    extra: dict[str, Any] = field(default_factory=dict)

    def weights_path(self) -> Path | None:
        """Where the default weights are, or would be, on disk."""
        if self.bundled_weights is not None:
            return self.bundled_weights()
        if self.weights_enum is not None:
            return cached_file_for(self.weights_enum().url)
        return None

    def weights_available(self) -> bool:
        """Whether the default weights are usable: on disk, or made by the builder itself (plugins)."""
        path = self.weights_path()
        if path is None:
            return self.bundled_weights is None and self.weights_enum is None
        return path.is_file()


@dataclass(frozen=True)
class ModelInfo:
    """What `list_models()` tells about a registered model, without loading it."""

    id: str
    task: str
    title: str
    weights_available: bool
    weights_path: str
    description: str
    default_layer: str | None
    num_classes: int
    weights_help: str = ""  # where to get weights that cannot be downloaded (e.g. U²-Net's), else ""


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add a model to the registry (ids are unique)."""
    if spec.id in _REGISTRY:
        raise ValueError(f"Model id '{spec.id}' is already registered.")
    _REGISTRY[spec.id] = spec
    return spec


def get_spec(model_id: str) -> ModelSpec:
    _ensure_loaded()
    try:
        return _REGISTRY[model_id]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownModel(f"Unknown model '{model_id}'. Known models: {known}.") from None


def list_models(task: str | None = None) -> list:
    """Registered models (optionally of one task) with whether their weights are on disk."""
    _ensure_loaded()
    out = []
    for spec in _REGISTRY.values():
        if task is not None and spec.task != task:
            continue
        path = spec.weights_path()
        out.append(
            ModelInfo(
                id=spec.id,
                task=spec.task,
                title=spec.title,
                weights_available=spec.weights_available(),
                weights_path=str(path) if path is not None else "",
                description=spec.description,
                default_layer=spec.layers[0] if spec.layers else None,
                num_classes=len(spec.categories()),
                weights_help=_weights_help(spec),
            )
        )
    return out


def _weights_help(spec: ModelSpec) -> str:
    """Instructions for default weights the user must fetch by hand (an `instructions` text), or ""."""
    if spec.weights_enum is None:
        return ""
    return str(getattr(spec.weights_enum(), "instructions", "") or "")


def _ensure_loaded() -> None:
    # Importing the catalogues registers their models; done lazily to keep `import saliency_core` light.
    from .. import plugins
    from . import catalog  # noqa: F401

    plugins.load_plugins()
