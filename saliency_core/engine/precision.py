"""Precision of forward-only batches (occlusion, RISE, Score-CAM, LIME, ...): float16 autocast with
channels-last inputs on CUDA, float32 everywhere else.

Only `RunContext.scores` uses it: gradient passes always run in float32, so gradient methods are
unaffected. The setting is `SALIENCY_PRECISION`: "auto" (the default: the fast path on CUDA for the
tasks whose scores are smooth in the logits) or "fp32" (never). Detection and keypoint scores match
boxes against thresholds, where half precision can flip a match, so they stay in float32.

Tolerance, tested (tests/core/test_precision.py): occlusion, RISE and Score-CAM maps within
`TOLERANCE[dtype]` relative L2 of their float32 maps, with Spearman rank correlation >= `MIN_SPEARMAN`.
"""

from __future__ import annotations

import os
import threading
import warnings
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from ..models.loaded import LoadedModel

ENV_VAR = "SALIENCY_PRECISION"
CHOICES = ("auto", "fp32")
FAST_TASKS = frozenset({"classification", "segmentation", "salient_object"})
# Relative L2 distance of a map to its float32 map (||m - m32|| / ||m32||), per autocast dtype: what the
# tests hold the demo CNN (and, on CUDA, ResNet-18's RISE and Score-CAM) to. Measured on the CPU, demo CNN
# at 112 px: float16 2.8e-3 (occlusion), 3.2e-3 (RISE), 9e-5 (Score-CAM). bfloat16 keeps 8 mantissa bits
# to float16's 11 and only runs where forced (CPU tests): 1.9e-2, 2.8e-2, 4.6e-4, hence the looser bound.
# Not claimed: maps whose contrast is at float16's resolution of the score (a random-init ResNet-18's
# occlusion drops, ~1% of its logit: 1.7e-2 measured).
TOLERANCE: dict[torch.dtype, float] = {torch.float16: 1e-2, torch.bfloat16: 5e-2}
MIN_SPEARMAN = 0.99
_DTYPE_NAMES = {torch.float16: "float16", torch.bfloat16: "bfloat16"}


@dataclass(frozen=True)
class Precision:
    """How one forward-only batch runs: autocast to `dtype` (None: plain float32), channels-last or not."""

    dtype: torch.dtype | None = None
    channels_last: bool = False
    device_type: str = "cpu"

    @property
    def active(self) -> bool:
        return self.dtype is not None

    def prepare(self, xs: torch.Tensor) -> torch.Tensor:
        """The batch in the memory format this precision runs in."""
        if self.channels_last and xs.ndim == 4:
            return xs.contiguous(memory_format=torch.channels_last)
        return xs

    def autocast(self) -> Any:
        """The autocast context of this precision (a no-op for float32)."""
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def note(self) -> str:
        """The sentence a result carries when its forward-only passes ran this way."""
        layout = ", channels-last" if self.channels_last else ""
        assert self.dtype is not None
        return (
            f"Forward-only passes ran in {_DTYPE_NAMES[self.dtype]} autocast{layout} on "
            f"{self.device_type.upper()}; maps within {TOLERANCE[self.dtype]:g} relative L2 of float32 "
            f"(tested; set {ENV_VAR}=fp32 for exact float32)."
        )


FP32 = Precision()
_FORCED: Precision | None = None  # tests: the fast path on any device (see `forced`)
_CONVERTED: weakref.WeakSet[nn.Module] = weakref.WeakSet()
_LOCK = threading.Lock()


def precision_setting() -> str:
    """$SALIENCY_PRECISION, read at each call ("auto" when unset or unknown, with a warning)."""
    raw = (os.environ.get(ENV_VAR) or "auto").strip().lower()
    if raw not in CHOICES:
        warnings.warn(f"{ENV_VAR}={raw!r} is not one of {', '.join(CHOICES)}; using auto.", stacklevel=3)
        return "auto"
    return raw


def policy_for(model: LoadedModel) -> Precision:
    """The precision forward-only batches of `model` run in: see the module's docstring."""
    if precision_setting() == "fp32" or model.task not in FAST_TASKS:
        return FP32
    if _FORCED is not None:
        return Precision(_FORCED.dtype, _FORCED.channels_last, model.device.type)
    if model.device.type != "cuda" or isinstance(model.module, torch.jit.ScriptModule):
        return FP32
    return Precision(torch.float16, _has_conv(model.module), "cuda")


@contextmanager
def forward_precision(model: LoadedModel, enabled: bool = True) -> Iterator[Precision]:
    """Run forward-only work of `model` in its policy's precision (float32 when not `enabled`): yields the
    `Precision`, whose `prepare(xs)` puts a batch in its memory format; the module is made channels-last
    once."""
    policy = policy_for(model) if enabled else FP32
    if policy.channels_last:
        channels_last_once(model.module)
    with policy.autocast():
        yield policy


def channels_last_once(module: nn.Module) -> None:
    """Store the module's 4-D weights channels-last, once per module object. Values stay equal (only the
    strides change, and no parameter's version moves, so cache keys stay valid)."""
    with _LOCK:
        if module in _CONVERTED:
            return
        # Outside inference mode even when called inside it: weights made there could never enter
        # a gradient pass again.
        with torch.inference_mode(False):
            module.to(memory_format=torch.channels_last)
        _CONVERTED.add(module)


def prefer_channels_last(module: nn.Module, device: torch.device) -> bool:
    """Store a convolutional model the engine loaded channels-last on CPU and CUDA, for every pass:
    oneDNN's and cuDNN's NHWC kernels are faster for gradients too (ResNet-18 at 224 on 2 CPU cores:
    integrated gradients 2.96 -> 2.01 s, Grad-CAM 40 -> 36 ms; maps within 2e-4 relative L2, the
    summation order). Only for modules the engine built: a caller's own module keeps its layout, since
    their code may `.view()` its activations. Returns whether it converted."""
    if device.type not in ("cpu", "cuda") or isinstance(module, torch.jit.ScriptModule):
        return False
    if not _has_conv(module):
        return False
    channels_last_once(module)
    return True


def is_channels_last(module: nn.Module) -> bool:
    """Whether `channels_last_once` converted this module."""
    return module in _CONVERTED


def as_float32(value: Any) -> Any:
    """A model output with every floating tensor in float32 (dicts, lists and tuples of them too), so
    scores are computed in full precision from a half-precision output."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, dict):
        return {k: as_float32(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(as_float32(v) for v in value)
    return value


@contextmanager
def forced(dtype: torch.dtype = torch.bfloat16, channels_last: bool = True) -> Iterator[None]:
    """Tests: apply the fast path on any device (e.g. bfloat16 autocast on the CPU) while open."""
    global _FORCED
    previous, _FORCED = _FORCED, Precision(dtype, channels_last)
    try:
        yield
    finally:
        _FORCED = previous


def _has_conv(module: nn.Module) -> bool:
    # Channels-last only pays for convolutions; a transformer's 3-D tokens gain nothing.
    return any(isinstance(m, nn.Conv2d) for m in module.modules())
