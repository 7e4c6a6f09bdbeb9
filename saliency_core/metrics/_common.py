"""Helpers shared by the metrics: maps as arrays, argument checks, model/input/target resolution, progress
and cancel."""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
import torch
from torch import nn

from ..engine import should_cancel
from ..errors import Cancelled, InvalidParameter
from ..limits import limits
from ..methods.base import BATCH_SIZE, SEED, Param
from ..methods.context import CancelFn, ProgressFn
from ..models.loaded import LoadedModel
from ..targets import Target

MapLike = torch.Tensor | np.ndarray


def as_map(saliency: MapLike | Any, name: str = "saliency") -> np.ndarray:
    """A 2-D float64 array from a map (Tensor or array, [H, W] or [1, H, W]) of finite numbers, within the
    server's max_pixels; anything else raises InvalidParameter (a NaN map would rank, point and score as
    noise, silently)."""
    from ..engine import Attribution

    if isinstance(saliency, Attribution):
        saliency = saliency.map
    if isinstance(saliency, torch.Tensor) and (saliency.is_meta or saliency.layout != torch.strided):
        raise InvalidParameter(
            f"The {name} map must be an ordinary tensor with values, not a {saliency.layout} one."
        )
    try:
        raw = saliency.detach() if isinstance(saliency, torch.Tensor) else np.asarray(saliency)
        # strings, objects and complex numbers are no saliency
        if raw.is_complex() if isinstance(raw, torch.Tensor) else raw.dtype.kind not in "biuf":
            raise TypeError
    except (TypeError, ValueError, OverflowError):
        raise InvalidParameter(
            f"The {name} map must hold real numbers; got {type(saliency).__name__}."
        ) from None
    # before the float64 copy, so an oversized map is refused without being copied
    limits().check("max_pixels", math.prod(raw.shape), f"The {name} map (values)", "Pass a smaller map.")
    arr = raw.to("cpu", torch.float64).numpy() if isinstance(raw, torch.Tensor) else raw.astype(np.float64)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2 or arr.size == 0:
        raise InvalidParameter(f"The {name} must be a 2-D map [H, W]; got shape {tuple(arr.shape)}.")
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        raise InvalidParameter(
            f"The {name} map has {bad} NaN or infinite values (of {arr.size}), so it cannot be ranked or "
            "compared: recompute it (a method that gives NaN failed on this input), or try another method."
        )
    return arr


def curve_steps(steps: Any) -> int:
    """A curve's number of steps: a whole number from 1 to the server's max_metric_steps."""
    steps = Param("steps", "int", 50, "", min=1).coerce(steps)
    limits().check("max_metric_steps", steps, "The number of steps", "Use fewer steps (50 is usual).")
    return steps


def number(
    name: str, value: Any, kind: str = "float", lo: float | None = None, hi: float | None = None
) -> Any:
    """A metric's numeric argument, checked like a method parameter (finite, of its kind, in range)."""
    return Param(name, kind, None, "", min=lo, max=hi).coerce(value)


def checked_seed(value: Any) -> int:
    """A random seed, as a method's `seed` parameter takes it."""
    return SEED.coerce(value)


def checked_batch_size(value: Any) -> int:
    """Images per batch (0: the engine picks), as a method's `batch_size` parameter takes it."""
    return BATCH_SIZE.coerce(value)


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
