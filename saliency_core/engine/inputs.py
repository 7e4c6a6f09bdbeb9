"""Inputs and cache keys: validating an image tensor, hashing it and a method's parameters, detaching
outputs before they are cached, and reading a cancel request."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import InvalidImage, InvalidParameter
from ..limits import limits
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


# Catalogue backbones (ResNet, VGG, EfficientNet, ConvNeXt, ViT-/32) downsample by 32: a smaller input
# leaves their last feature map without a single cell, so CAMs are empty and some pooling layers fail.
MIN_INPUT_SIDE = 32
PREPROCESS_ADVICE = (
    "Use model.preprocess(image), which gives the [1, 3, H, W] float tensor the model expects."
)


def expected_channels(model: LoadedModel) -> int | None:
    """Input channels the model takes: a described model's preprocessing gives them (3), a bare module's
    first layer with weights says them when it is a convolution; None when nothing says."""
    if model.spec is not None:
        return len(model.spec.preprocess.mean)
    for module in model.module.modules():
        if next(module.parameters(recurse=False), None) is not None:
            return module.in_channels if type(module) is nn.Conv2d else None
    return None


def min_side(model: LoadedModel) -> int:
    """The smallest input side a model is run on: MIN_INPUT_SIDE, or less where the model's preprocessing
    makes smaller inputs itself (a plugin's 28-pixel digit classifier); a bare module (a test's toy, a
    user's tiny network) is taken at its word, down to one pixel."""
    if model.spec is None:
        return 1
    own = model.spec.preprocess.crop or model.spec.preprocess.max_side
    return min(MIN_INPUT_SIDE, own) if own else MIN_INPUT_SIDE


def check_input(model: LoadedModel, x: torch.Tensor) -> torch.Tensor:
    """x as [1, C, H, W] float32 on the model's device, with a clear error for anything else: not a tensor,
    sparse or meta, the wrong rank, batch or channels, empty, too small or over max_input_side, not
    floating point, or holding NaN or infinite values."""
    if not isinstance(x, torch.Tensor):
        raise InvalidParameter(
            f"The input must be a tensor [1, C, H, W], not {type(x).__name__}. {PREPROCESS_ADVICE}"
        )
    if x.layout != torch.strided or x.is_meta:
        where = "a meta tensor (it has no values)" if x.is_meta else f"a {x.layout} tensor"
        raise InvalidParameter(f"The input is {where}: pass an ordinary (dense) tensor with values.")
    if x.ndim == 3:
        x = x.unsqueeze(0)  # [C, H, W]: one image
    if x.ndim != 4 or x.shape[0] != 1:
        raise InvalidParameter(f"Explain one image at a time: expected [1, C, H, W], got {tuple(x.shape)}.")
    _, c, h, w = x.shape
    if x.numel() == 0:
        raise InvalidParameter(f"The input is empty (shape {tuple(x.shape)}): it has no pixels to explain.")
    channels = expected_channels(model)
    if channels is not None and c != channels:
        raise InvalidParameter(
            f"{model.title} takes {channels}-channel images; the input has {c} (shape {tuple(x.shape)}, "
            f"read as [1, C, H, W]). {PREPROCESS_ADVICE} It converts grey and RGBA pictures."
        )
    smallest = min_side(model)
    if min(h, w) < smallest:
        raise InvalidImage(
            f"The input is {w}×{h} pixels; {model.title} needs at least {smallest}×{smallest} "
            "(smaller inputs leave its last feature map without a cell). Use a larger image."
        )
    limits().check(
        "max_input_side",
        max(h, w),
        "The input's longer side (pixels)",
        "Resize the image first (model.preprocess does for most models).",
    )
    if not x.is_floating_point():
        raise InvalidParameter(
            f"The input is a {str(x.dtype).removeprefix('torch.')} tensor; models take normalised floating "
            f"point values. {PREPROCESS_ADVICE}"
        )
    if not torch.isfinite(x).all():
        raise InvalidParameter(
            "The input contains NaN or infinite values: every pixel must be a finite number."
        )
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
