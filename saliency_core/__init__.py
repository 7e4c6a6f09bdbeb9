"""saliency_core: saliency maps for vision models, UI-free, with one shared cached engine.

import saliency_core as sc
m = sc.load_model("resnet50")
x = m.preprocess(sc.load_image("cat.jpg"))
a = sc.attribute(m, x, "gradcam", m.predict(x)[0])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from . import metrics
from .engine import Attribution, Engine, Estimate, get_engine, set_engine
from .errors import (
    Cancelled,
    InvalidImage,
    InvalidParameter,
    InvalidWeights,
    SaliencyError,
    TargetNotFound,
    UnknownMethod,
    UnknownModel,
    WeightsUnavailable,
)
from .io import load_image
from .methods import MethodInfo, list_methods
from .models import LoadedModel, ModelInfo, list_models
from .samples import Sample, list_samples
from .targets import BoxTarget, ClassTarget, KeypointTarget, MaskTarget, Target

__version__ = "0.1.0"


def load_model(model_id: str, weights: str | None = "default") -> LoadedModel:
    """A registered model: weights "default" (pretrained / bundled), None (random init) or a file path."""
    return get_engine().load_model(model_id, weights)


def attribute(
    model: LoadedModel | nn.Module,
    x: torch.Tensor,
    method: str,
    target: Target | int | None = None,
    **params: Any,
) -> Attribution:
    """One saliency map of `target` for input x [1, C, H, W] by `method` (see `list_methods()` for params).

    Also accepts `progress=callable(fraction, message)`, `cancel=callable() -> bool | threading.Event`
    and `use_cache=False` (recompute everything, shared needs included).
    """
    return get_engine().attribute(model, x, method, target, **params)


def estimate(
    model: LoadedModel | nn.Module,
    method: str,
    params: dict[str, Any] | None = None,
    x: torch.Tensor | None = None,
) -> Estimate:
    """Forward/backward passes `method` will make with `params`, and seconds once speed is known."""
    return get_engine().estimate(model, method, params, x)


__all__ = [
    "Attribution",
    "BoxTarget",
    "Cancelled",
    "ClassTarget",
    "Engine",
    "Estimate",
    "InvalidImage",
    "InvalidParameter",
    "InvalidWeights",
    "KeypointTarget",
    "LoadedModel",
    "MaskTarget",
    "MethodInfo",
    "ModelInfo",
    "SaliencyError",
    "Sample",
    "Target",
    "TargetNotFound",
    "UnknownMethod",
    "UnknownModel",
    "WeightsUnavailable",
    "attribute",
    "estimate",
    "get_engine",
    "list_methods",
    "list_models",
    "list_samples",
    "load_image",
    "load_model",
    "metrics",
    "set_engine",
]
