"""Inputs and cache keys: validating an image tensor, hashing it and a method's parameters, detaching
outputs before they are cached, and reading a cancel request."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from ..errors import InvalidParameter
from ..methods.context import CancelFn

if TYPE_CHECKING:
    from ..models.loaded import LoadedModel


def image_digest(x: torch.Tensor) -> str:
    """Content hash of an input tensor."""
    data = x.detach().to("cpu", torch.float32).contiguous().numpy()
    return hashlib.blake2b(data.tobytes() + str(tuple(data.shape)).encode(), digest_size=16).hexdigest()


def params_key(params: Mapping[str, Any]) -> tuple:
    """Resolved parameters as a hashable, order-free cache key."""
    # batch_size changes how work is split, not the result.
    return tuple(sorted((k, v) for k, v in params.items() if k != "batch_size"))


def check_input(model: LoadedModel, x: torch.Tensor) -> torch.Tensor:
    """x as [1, C, H, W] float32 on the model's device, with clear errors for anything else."""
    if not isinstance(x, torch.Tensor):
        raise InvalidParameter("The input must be a tensor [1, C, H, W]: use model.preprocess(image).")
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[0] != 1:
        raise InvalidParameter(f"Explain one image at a time: expected [1, C, H, W], got {tuple(x.shape)}.")
    if not torch.isfinite(x).all():
        raise InvalidParameter("The input contains NaN or infinite values.")
    return x.to(model.device, torch.float32)


def detach(value: Any) -> Any:
    """A model output with every tensor detached (dicts, lists and tuples of them too), so a cached
    output does not keep its autograd graph alive."""
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, dict):
        return {k: detach(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(detach(v) for v in value)
    return value


def should_cancel(cancel: CancelFn | threading.Event | None) -> bool:
    """Whether a cancel callback or event asks to stop."""
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())
