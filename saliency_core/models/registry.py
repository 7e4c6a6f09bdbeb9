"""The model registry: id -> how to build it, its task, preprocessing and CAM layer candidates."""

from __future__ import annotations

import difflib
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
    # The model with its source's own pretrained weights, where neither a bundled file nor a weights enum
    # says how (timm's loading), and where that source keeps the file, when known.
    default_weights: Callable[[], nn.Module] | None = None
    default_weights_file: Callable[[], Path | None] | None = None

    @property
    def source(self) -> str:
        """Where the model comes from: "curated", "plugin", "timm", "torchvision" or "program"."""
        return str(self.extra.get("source", "curated"))

    @property
    def num_classes(self) -> int:
        """Outputs of the head (0 when only a forward pass can tell, as for programs)."""
        return int(self.extra.get("num_classes", len(self.categories())))

    def weights_path(self) -> Path | None:
        """Where the default weights are, or would be, on disk."""
        if self.bundled_weights is not None:
            return self.bundled_weights()
        if self.weights_enum is not None:
            return cached_file_for(self.weights_enum().url)
        if self.default_weights_file is not None:
            return self.default_weights_file()
        return None

    def weights_available(self) -> bool:
        """Whether the default weights are usable: on disk, or made by the builder itself (plugins)."""
        path = self.weights_path()
        if path is None:
            return self.bundled_weights is None and self.weights_enum is None and self.default_weights is None
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
    source: str = "curated"  # "curated", "plugin", "timm", "torchvision" or "program"


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add a model to the registry (ids are unique)."""
    if spec.id in _REGISTRY:
        raise ValueError(f"Model id '{spec.id}' is already registered.")
    _REGISTRY[spec.id] = spec
    return spec


def get_spec(model_id: str, num_classes: int | None = None) -> ModelSpec:
    """The spec of a registered id, or one built on the fly for a source id ("timm:resnet18")."""
    _ensure_loaded()
    found = _REGISTRY.get(model_id)
    if found is not None:
        return found
    from . import sources

    if sources.split_id(model_id) is not None:
        return sources.resolve(model_id, num_classes)
    raise UnknownModel(_unknown_message(model_id))


def _unknown_message(model_id: str) -> str:
    from . import sources

    close = difflib.get_close_matches(model_id, list(_REGISTRY), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    prefix = model_id.partition(":")[0] if ":" in model_id else ""
    if prefix:
        hint += f" Model sources: {', '.join(f'{p}:<name>' for p in sources.SOURCES)}."
    elif model_id in sources.torchvision_names():
        hint += f" It is a torchvision architecture: use 'torchvision:{model_id}'."
    known = ", ".join(sorted(_REGISTRY))
    return f"Unknown model '{model_id}'.{hint} Known models: {known}."


def info_for(spec: ModelSpec) -> ModelInfo:
    """What the UI shows about a model before loading it."""
    path = spec.weights_path()
    return ModelInfo(
        id=spec.id,
        task=spec.task,
        title=spec.title,
        weights_available=spec.weights_available(),
        weights_path=str(path) if path is not None else "",
        description=spec.description,
        default_layer=spec.layers[0] if spec.layers else None,
        num_classes=spec.num_classes,
        weights_help=_weights_help(spec),
        source=spec.source,
    )


def list_models(task: str | None = None) -> list:
    """Registered models, curated and plugins' (optionally of one task), with whether their weights are
    on disk; source ids ("timm:...") are open-ended and not listed (see `sources.list_architectures`)."""
    _ensure_loaded()
    return [info_for(spec) for spec in _REGISTRY.values() if task is None or spec.task == task]


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
