"""What the engine hands back: a computed saliency map, and the cost of one before it runs."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ..targets import Target


@dataclass(frozen=True)
class Attribution:
    """One saliency map: `map` [H, W] signed and unnormalised on the CPU; `raw` the method's native output.

    The tensors are the caller's own (the engine's cache keeps separate copies). `notes` are plain sentences
    on how the map was made that a reader should see (a batch size lowered to fit the memory limit, a run
    moved to the CPU after the GPU ran out of memory).
    """

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
    notes: tuple[str, ...] = ()

    def owned_copy(self) -> Attribution:
        """A copy whose tensors and dicts share nothing with this one (the cache hands these out)."""
        return replace(
            self,
            map=self.map.clone(),
            raw=self.raw.clone(),
            params=dict(self.params),
            extras=dict(self.extras),
        )


@dataclass(frozen=True)
class Estimate:
    """Passes a method will make (images through the model) and the seconds they will take, from this
    model's measured speed at this input size; `from_probe`: some of that speed was measured only by the
    probe (before any run), so the figure is rougher. `seconds` is None only when no pass could be timed
    (the model failed on a probe input)."""

    forward_passes: int
    backward_passes: int
    seconds: float | None
    from_probe: bool = False
