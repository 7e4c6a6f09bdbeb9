"""Activation maximisation: an input optimised to excite a class score or one channel of a layer.

Gradient ascent (Adam) in the model's input space, from noise or from an image, with the usual
regularisers: a random shift ("jitter") before every step and a light Gaussian blur every few steps; the
input is clamped to the range the preprocessing can produce. Gradients are taken with
`torch.autograd.grad` w.r.t. the input only, so the model's parameters (and their .grad) are never touched.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import InvalidParameter
from .hooks import capture_layers
from .methods.common import gaussian_blur
from .methods.context import CancelFn, ProgressFn
from .models.loaded import LoadedModel
from .targets import ClassTarget, Target, as_target


@dataclass(frozen=True, eq=False)
class ActMaxResult:
    """The optimised picture (`image`, uint8 HxWx3), its input tensor, and the objective at each step."""

    image: np.ndarray
    input: torch.Tensor
    scores: np.ndarray
    objective: str
    initial_score: float
    final_score: float
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "objective": self.objective,
            "initial_score": float(self.initial_score),
            "final_score": float(self.final_score),
            "scores": [float(v) for v in self.scores],
            "seconds": float(self.seconds),
        }


def activation_maximization(
    model: LoadedModel | nn.Module,
    objective: int | Target | str,
    *,
    layer: str | None = None,
    channel: int | None = None,
    steps: int = 128,
    lr: float = 0.05,
    jitter: int = 8,
    blur_every: int = 4,
    blur_sigma: float = 0.5,
    start: str = "noise",
    x: torch.Tensor | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
    cancel: CancelFn | threading.Event | None = None,
) -> ActMaxResult:
    """Maximise `objective`: a class (index or Target; its score, e.g. the logit) or "channel" (the mean
    activation of `channel` at `layer`). `start` is "noise" or "image" (then `x` is the image's input)."""
    from .metrics._common import resolve_model, step  # lazily: saliency_core.metrics re-exports this module

    began = time.perf_counter()
    lm = resolve_model(model)
    if steps < 1 or lr <= 0 or jitter < 0 or blur_every < 0 or blur_sigma < 0:
        raise InvalidParameter("Steps and lr must be positive; jitter, blur_every and blur_sigma at least 0.")
    score_fn, description = _objective(lm, objective, layer, channel)
    generator = torch.Generator().manual_seed(int(seed))
    rng = np.random.default_rng(seed)
    initial = _start(lm, start, x, generator)
    lo, hi = _bounds(lm, initial)
    image = initial.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([image], lr=lr)
    scores = np.empty(steps, np.float64)
    message = f"Maximising {description}"
    for i in range(steps):
        step(progress, cancel, i / steps, message)
        dy, dx = (int(v) for v in rng.integers(-jitter, jitter + 1, size=2)) if jitter else (0, 0)
        with lm.lock, torch.enable_grad():
            score = score_fn(torch.roll(image, shifts=(dy, dx), dims=(2, 3)))
            (grad,) = torch.autograd.grad(score, [image])
        scores[i] = float(score.detach())
        image.grad = -grad  # Adam minimises
        optimiser.step()
        image.grad = None
        with torch.no_grad():
            if blur_every and blur_sigma > 0 and (i + 1) % blur_every == 0:
                image.copy_(gaussian_blur(image, blur_sigma))
            image.copy_(torch.maximum(torch.minimum(image, hi), lo))
    step(progress, cancel, 1.0, message)
    final = image.detach()
    with lm.lock, torch.no_grad():
        first, last = float(score_fn(initial)), float(score_fn(final))
    return ActMaxResult(
        image=lm.to_image(final),
        input=final.cpu(),
        scores=scores,
        objective=description,
        initial_score=first,
        final_score=last,
        seconds=time.perf_counter() - began,
    )


def _objective(
    lm: LoadedModel, objective: int | Target | str, layer: str | None, channel: int | None
) -> tuple[Any, str]:
    """score_fn(x) -> scalar tensor, and a description."""
    if isinstance(objective, str):
        if objective != "channel":
            raise InvalidParameter(
                f"The objective is a class index, a Target or 'channel'; got {objective!r}."
            )
        name = layer or lm.layers()[0]
        if channel is None or int(channel) != channel or channel < 0:
            raise InvalidParameter("A channel objective needs a non-negative integer `channel`.")
        reshape = lm.reshape_for(name)

        def channel_score(inp: torch.Tensor) -> torch.Tensor:
            with capture_layers(lm.module, [name]) as cap:
                lm.forward(inp)
            if name not in cap.outputs:
                raise InvalidParameter(f"Layer {name} was not used in the forward pass.")
            acts = reshape(cap.outputs[name]) if reshape is not None else cap.outputs[name]
            if acts.ndim < 2 or channel >= acts.shape[1]:
                raise InvalidParameter(f"Layer {name} has {acts.shape[1]} channels; got channel {channel}.")
            return acts[:, int(channel)].mean()

        return channel_score, f"channel {int(channel)} of {name}"
    target = as_target(objective)
    if target is None:
        raise InvalidParameter("Activation maximisation needs a class or 'channel' objective.")
    if isinstance(target, ClassTarget) and not target.label and target.index < len(lm.categories):
        target = ClassTarget(target.index, label=lm.categories[target.index], mask=target.mask)
    if isinstance(target, ClassTarget):
        text = f"class {target.index}" + (f" ({target.label})" if target.label else "")
    else:
        text = target.describe()

    def class_score(inp: torch.Tensor) -> torch.Tensor:
        return target(lm.forward(inp)).sum()

    return class_score, text


def _start(lm: LoadedModel, start: str, x: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
    if start == "image":
        if x is None:
            raise InvalidParameter("start='image' needs the image's input tensor x.")
        found = x if x.ndim == 4 else x.unsqueeze(0)
        return found.detach().to(lm.device, torch.float32).clone()
    if start != "noise":
        raise InvalidParameter(f"start must be 'noise' or 'image'; got {start!r}.")
    if x is not None:
        shape = tuple(x.shape[-3:])
    else:
        crop = lm.spec.preprocess.crop if lm.spec is not None else None
        shape = (3, crop or 224, crop or 224)
    pixels = (0.5 + 0.1 * torch.randn((1, *shape), generator=generator)).clamp(0.0, 1.0)
    return (lm.from_pixels(pixels) if shape[0] == 3 else pixels).to(lm.device)


def _bounds(lm: LoadedModel, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel smallest and largest input values (those of black and white pixels)."""
    if like.shape[1] != 3:
        return torch.zeros(1, device=like.device), torch.ones(1, device=like.device)
    lo = lm.from_pixels(torch.zeros(1, 3, 1, 1)).to(like.device)
    hi = lm.from_pixels(torch.ones(1, 3, 1, 1)).to(like.device)
    return torch.minimum(lo, hi), torch.maximum(lo, hi)
