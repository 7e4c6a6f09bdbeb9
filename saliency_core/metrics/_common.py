"""Helpers shared by the metrics: maps as arrays, model/input/target resolution, progress and cancel."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import torch
from torch import nn

from ..engine import should_cancel
from ..errors import Cancelled, InvalidParameter
from ..methods.context import CancelFn, ProgressFn
from ..models.loaded import LoadedModel
from ..targets import Target

MapLike = torch.Tensor | np.ndarray


def as_map(saliency: MapLike | Any, name: str = "saliency") -> np.ndarray:
    """A 2-D float64 array from a map (Tensor or array, [H, W] or [1, H, W]); NaN becomes -inf."""
    from ..engine import Attribution

    if isinstance(saliency, Attribution):
        saliency = saliency.map
    arr = (
        saliency.detach().to("cpu", torch.float64).numpy()
        if isinstance(saliency, torch.Tensor)
        else np.asarray(saliency, dtype=np.float64)
    )
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2 or arr.size == 0:
        raise InvalidParameter(f"The {name} must be a 2-D map [H, W]; got shape {tuple(arr.shape)}.")
    return np.where(np.isnan(arr), -np.inf, arr)


def resolve_model(model: LoadedModel | nn.Module) -> LoadedModel:
    """A LoadedModel (plain modules are wrapped by the process-wide engine)."""
    if isinstance(model, LoadedModel):
        return model
    from ..engine import get_engine

    return get_engine().resolve(model)


def check_input(model: LoadedModel, x: torch.Tensor) -> torch.Tensor:
    """x as [1, C, H, W] float32 on the model's device."""
    return model.engine.check_input(model, x).detach()


def resolve_target(model: LoadedModel, x: torch.Tensor, target: Target | int | None) -> Target:
    """The target (default: the top prediction), bound to the unperturbed output where the task needs it."""
    return model.engine.resolve_target(model, target, lambda: model.engine.forward(model, x))


def step(
    progress: ProgressFn | None, cancel: CancelFn | threading.Event | None, fraction: float, message: str
) -> None:
    """Report progress; raise Cancelled when asked to stop."""
    if should_cancel(cancel):
        raise Cancelled("Cancelled.")
    if progress is not None:
        progress(min(1.0, max(0.0, fraction)), message)


def sub_progress(progress: ProgressFn | None, start: float, stop: float) -> ProgressFn | None:
    """Map a part's progress in [0, 1] onto [start, stop] of the whole."""
    if progress is None:
        return None
    return lambda f, msg: progress(start + (stop - start) * min(1.0, max(0.0, f)), msg)
