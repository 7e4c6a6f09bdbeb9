"""What to explain: callables mapping a model's output to one differentiable score per image.

A target is bound to the unperturbed image's output before a method runs (`bind`), so that a
region chosen from the original prediction stays fixed while perturbation methods vary the input.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from .errors import InvalidParameter


def _digest(array: np.ndarray | torch.Tensor | None) -> str | None:
    if array is None:
        return None
    data = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    return hashlib.blake2b(
        np.ascontiguousarray(data).tobytes() + str(data.shape).encode(), digest_size=12
    ).hexdigest()


def _as_mask(mask: Any, like: torch.Tensor) -> torch.Tensor:
    m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask)
    return m.to(device=like.device, dtype=like.dtype)


class Target:
    """Base class: `target(output) -> Tensor[N]`, one score per image of the batch."""

    label: str = ""
    score: float | None = None

    def __call__(self, output: Any) -> torch.Tensor:
        raise NotImplementedError

    def bind(self, output: Any) -> Target:
        """Fix anything taken from the unperturbed prediction (a predicted mask, a box)."""
        return self

    def key(self) -> tuple:
        """A hashable identity for caching."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.label or self.__class__.__name__


@dataclass(frozen=True, eq=False)
class ClassTarget(Target):
    """A class: its logit (classification) or its logits summed over a region (segmentation)."""

    index: int
    label: str = ""
    score: float | None = None
    mask: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if int(self.index) != self.index or self.index < 0:
            raise InvalidParameter(f"A class index must be a non-negative integer, got {self.index!r}.")

    def __call__(self, output: Any) -> torch.Tensor:
        if isinstance(output, torch.Tensor) and output.ndim == 2:
            if self.index >= output.shape[1]:
                raise InvalidParameter(
                    f"Class index {self.index} is out of range: the model has {output.shape[1]} classes."
                )
            return output[:, self.index]
        if isinstance(output, torch.Tensor) and output.ndim == 4:
            if self.index >= output.shape[1]:
                raise InvalidParameter(
                    f"Class index {self.index} is out of range: the model has {output.shape[1]} classes."
                )
            if self.mask is not None:
                region = self.mask
            else:
                region = output.detach().argmax(1, keepdim=True) == self.index
            region = _as_mask(region, output)
            if region.ndim == 2:
                region = region[None, None]
            elif region.ndim == 3:
                region = region[:, None]
            return (output[:, self.index : self.index + 1] * region).flatten(1).sum(1)
        raise InvalidParameter(
            "A class target needs classification logits [N, C] or segmentation logits [N, C, H, W]."
        )

    def bind(self, output: Any) -> Target:
        if self.mask is None and isinstance(output, torch.Tensor) and output.ndim == 4:
            predicted = (output.detach().argmax(1)[0] == self.index).float()
            return replace(self, mask=predicted)
        return self

    def key(self) -> tuple:
        return ("class", int(self.index), _digest(self.mask))

    def describe(self) -> str:
        return self.label or f"class {self.index}"


def as_target(target: Target | int | None) -> Target | None:
    """Accept a Target or a bare class index."""
    if target is None or isinstance(target, Target):
        return target
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        return ClassTarget(int(target))
    raise InvalidParameter(f"A target must be a Target or an int class index, got {type(target).__name__}.")
