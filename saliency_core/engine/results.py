"""What the engine hands back: a computed saliency map, and the cost of one before it runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..targets import Target


@dataclass(frozen=True)
class Attribution:
    """One saliency map: `map` [H, W] signed and unnormalised on the CPU; `raw` the method's native output."""

    map: torch.Tensor
    raw: torch.Tensor
    method: str
    params: dict[str, Any]
    target: Target | None
    model_id: str
    forward_passes: int
    backward_passes: int
    seconds: float
    compute_seconds: float
    cached: bool = False
    device: str = "cpu"
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Estimate:
    """Passes a method will make (images through the model) and, once speed is known, seconds."""

    forward_passes: int
    backward_passes: int
    seconds: float | None
