"""`register_model`: a model of your own (a plugin's architecture) in the registry, in one call."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from torch import nn

from .preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from .registry import ModelSpec, register


def register_model(
    spec_or_id: ModelSpec | str,
    build: Callable[[], nn.Module] | None = None,
    *,
    task: str = "classification",
    title: str = "",
    categories: Sequence[str] | Callable[[], Sequence[str]] = (),
    layers: Sequence[str] = (),
    input_size: int = 224,
    resize: int | None = None,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    cam_head: str | None = None,
    weights: str | Path | None = None,
    description: str = "",
) -> ModelSpec:
    """Register a model; returns its spec. Either a full `ModelSpec`, or an id and a builder:

    `build()` returns the module (with its own initial weights); `weights`, a .safetensors or state-dict
    file read as data only, replaces them as the model's default weights. `layers` are the CAM layer
    candidates, the default first (guessed from the module's convolutional blocks when not given);
    `categories` the class names; inputs are resized to `resize` (default: `input_size`) and centre-cropped
    to `input_size`, then normalised with `mean` and `std`. `cam_head` names the linear layer after
    global average pooling, for CAM.
    """
    if isinstance(spec_or_id, ModelSpec):
        # Marked as a plugin's for the model card, unless the spec says where it comes from.
        extra = {"source": "plugin", **spec_or_id.extra}
        return register(dataclasses.replace(spec_or_id, extra=extra))
    if build is None:
        raise TypeError("register_model(id, build): a builder function is needed.")
    names = categories if callable(categories) else tuple(str(c) for c in categories)
    if not layers:
        from .loaded import _guess_layers

        layers = _guess_layers(build())
    file = Path(weights) if weights is not None else None
    return register(
        ModelSpec(
            id=str(spec_or_id),
            task=task,
            title=title or str(spec_or_id),
            build=lambda _weights: build(),
            layers=tuple(layers),
            preprocess=Preprocess(resize=resize or input_size, crop=input_size, mean=mean, std=std),
            categories=names if callable(names) else (lambda: names),
            bundled_weights=(lambda: file) if file is not None else None,
            description=description,
            cam_head=cam_head,
            extra={"source": "plugin"},
        )
    )
