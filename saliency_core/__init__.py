"""saliency_core: saliency maps for vision models, UI-free, with one shared cached engine.

import saliency_core as sc
m = sc.load_model("resnet50")
x = m.preprocess(sc.load_image("cat.jpg"))
a = sc.attribute(m, x, "gradcam", m.predict(x)[0])
"""

from __future__ import annotations

import os
from collections.abc import Hashable
from typing import Any

import torch
from torch import nn

from . import metrics
from .engine import Attribution, Engine, Estimate, Job, get_engine, set_engine
from .engine.jobs import Progress as JobProgress
from .engine.jobs import Work
from .errors import (
    Cancelled,
    InvalidImage,
    InvalidParameter,
    InvalidWeights,
    ResourceLimit,
    SaliencyError,
    TargetNotFound,
    UnknownMethod,
    UnknownModel,
    WeightsUnavailable,
)
from .io import load_image
from .limits import Limits, limits, set_limits
from .methods import FAMILIES, FAMILY_TITLES, MethodInfo, MethodSpec, Param, list_methods
from .methods.base import BATCH_SIZE, LAYER, SEED, CostInfo, featured
from .methods.base import register as register_method
from .methods.context import MethodContext, ProgressFn
from .methods.lesson import Lesson
from .models import LoadedModel, ModelInfo, ModelSpec, Preprocess, list_models
from .models import sources as _sources
from .models.custom import register_model
from .models.download import DownloadProgress, download_weights
from .plugins import PluginStatus, load_plugins, plugin_status
from .samples import Sample, list_samples
from .targets import BoxTarget, ClassTarget, KeypointTarget, MaskTarget, Target
from .tasks import TaskAdapter, list_tasks, register_adapter

__version__ = "0.1.0"


def featured_methods(view: str, task: str | None = None) -> list[str]:
    """Ids of the methods a view ("explore", "compare", "evaluate", "learn", "reference") picks by default,
    in order, as each method declares (`MethodSpec.featured`)."""
    return featured(view, task)


def method_defaults(method: str, task: str, side: int) -> dict[str, Any]:
    """Parameter defaults of `method` for an input of `side` pixels of a `task` model, where they differ
    from the schema's (which suit a 224-px classifier): {} for tasks that keep the schema's defaults."""
    from .methods.base import get_method
    from .tasks import get_adapter

    adapter = get_adapter(task)
    if not adapter.scaled_defaults:
        return {}
    return get_method(method).defaults_for(side, adapter.heavy_passes)


def load_model(
    model_id: str,
    weights: str | os.PathLike | None = "default",
    *,
    num_classes: int | None = None,
    categories: str | os.PathLike | None = None,
) -> LoadedModel:
    """A model by id: a registered one ("resnet50"), or from a source ("timm:<name>",
    "torchvision:<name>", "program:<path>" where the operator allows programs).

    weights: "default" (pretrained / bundled), None (random init) or a file path (a state dict or
    .safetensors file, read as data only; training-checkpoint wrappers and prefixes are undone).
    num_classes: a source model's head size (default: the file's, else the architecture's).
    categories: a class-names file (.txt, one per line, or .json list / index mapping).
    """
    return get_engine().load_model(model_id, weights, num_classes=num_classes, categories=categories)


def model_info(model_id: str, num_classes: int | None = None) -> ModelInfo:
    """What the UI shows about any model id (curated, plugin or source) without loading weights."""
    return _sources.model_info(model_id, num_classes)


def list_architectures(source: str) -> list[str]:
    """Every architecture name of a source: "timm" or "torchvision" (classification, detection,
    segmentation), for ids "<source>:<name>"."""
    return _sources.list_architectures(source)


def programs_allowed() -> bool:
    """Whether the operator allows "program:<path>" models (TorchScript / torch.export files): off unless
    saliency.toml says `allow_programs = true` or SALIENCY_ALLOW_PROGRAMS=1."""
    from .models.program_source import programs_allowed as allowed

    return allowed()


def available_devices() -> list[str]:
    """The devices this machine can compute on: "cpu", each CUDA device ("cuda:0", …) and "mps"."""
    from .device import available_devices as found

    return found()


def set_device(device: str) -> str:
    """Move the shared engine and its loaded models to `device` (one of `available_devices()`), waiting for
    running work; returns the device's description. InvalidParameter for a device this machine lacks."""
    engine = get_engine()
    engine.move_to(device)
    return engine.describe_device()


def current_device() -> str:
    """The device the shared engine computes on, named as in `available_devices()`."""
    from .device import device_name

    return device_name(get_engine().device)


def attribute(
    model: LoadedModel | nn.Module,
    x: torch.Tensor,
    method: str,
    target: Target | int | None = None,
    **params: Any,
) -> Attribution:
    """One saliency map of `target` for input x [1, C, H, W] by `method` (see `list_methods()` for params).

    Also accepts `progress=callable(fraction, message)`, `cancel=callable() -> bool | threading.Event`,
    `preview=callable(partial_map, label)` (progressive methods hand over coarse maps while they refine)
    and `use_cache=False` (recompute everything, shared needs included).
    """
    return get_engine().attribute(model, x, method, target, **params)


def submit(
    model: LoadedModel | nn.Module,
    x: torch.Tensor,
    method: str,
    target: Target | int | None = None,
    *,
    watcher: Hashable | None = None,
    **params: Any,
) -> Job:
    """`attribute` as a background job owned by the engine: `job.progress`, `job.wait(timeout)`,
    `job.result()`, `job.cancel(watcher)`. The same request while its job runs attaches to that job (one
    computation); a cached one comes back done at once. The job keeps running when nobody polls it, and
    its map lands in the cache. `cancel(watcher)` stops it only when no other watcher waits for it."""
    return get_engine().submit(model, x, method, target, watcher=watcher, **params)


def cached_attribution(
    model: LoadedModel | nn.Module,
    x: torch.Tensor,
    method: str,
    target: Target | int | None = None,
    **params: Any,
) -> Attribution | None:
    """The engine's cached map for this request, or None; never runs the model."""
    return get_engine().lookup(model, x, method, target, **params)


def find_job(
    model: LoadedModel | nn.Module,
    x: torch.Tensor,
    method: str,
    target: Target | int | None = None,
    **params: Any,
) -> Job | None:
    """The running (or recently finished) job of this request, or None; never runs the model."""
    return get_engine().find_job(model, x, method, target, **params)


def submit_job(
    key: Hashable,
    work: Work,
    *,
    label: str = "",
    group: Hashable = None,
    watcher: Hashable | None = None,
) -> Job:
    """Any long work as an engine job keyed by `key` (e.g. a metric's request): `work(progress, cancel)`
    runs in a worker thread, reporting `progress(fraction, message)` and stopping when the
    `cancel` event is set. Submitting a key whose job runs (or finished well) attaches to it."""
    return get_engine().jobs.submit(key, work, label=label, group=group, watcher=watcher)


def estimate(
    model: LoadedModel | nn.Module,
    method: str,
    params: dict[str, Any] | None = None,
    x: torch.Tensor | None = None,
) -> Estimate:
    """Forward/backward passes `method` will make with `params`, and seconds once speed is known."""
    return get_engine().estimate(model, method, params, x)


__all__ = [
    "BATCH_SIZE",
    "FAMILIES",
    "FAMILY_TITLES",
    "LAYER",
    "SEED",
    "Attribution",
    "BoxTarget",
    "Cancelled",
    "ClassTarget",
    "CostInfo",
    "DownloadProgress",
    "Engine",
    "Estimate",
    "InvalidImage",
    "InvalidParameter",
    "InvalidWeights",
    "Job",
    "JobProgress",
    "KeypointTarget",
    "Lesson",
    "Limits",
    "LoadedModel",
    "MaskTarget",
    "MethodContext",
    "MethodInfo",
    "MethodSpec",
    "ModelInfo",
    "ModelSpec",
    "Param",
    "PluginStatus",
    "Preprocess",
    "ProgressFn",
    "ResourceLimit",
    "SaliencyError",
    "Sample",
    "Target",
    "TargetNotFound",
    "TaskAdapter",
    "UnknownMethod",
    "UnknownModel",
    "WeightsUnavailable",
    "attribute",
    "available_devices",
    "cached_attribution",
    "current_device",
    "download_weights",
    "estimate",
    "featured_methods",
    "find_job",
    "get_engine",
    "limits",
    "list_architectures",
    "list_methods",
    "list_models",
    "list_samples",
    "list_tasks",
    "load_image",
    "load_model",
    "load_plugins",
    "method_defaults",
    "metrics",
    "model_info",
    "plugin_status",
    "programs_allowed",
    "register_adapter",
    "register_method",
    "register_model",
    "set_device",
    "set_engine",
    "set_limits",
    "submit",
    "submit_job",
]
