"""Semantic segmentation: class logits [N, C, H, W] at the input's size.

A target is a class summed over a region (ClassTarget: by default its predicted mask, fixed when the
target is bound). Perturbation methods score the class's mean softmax probability over that region.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InvalidParameter
from ..targets import ClassTarget, Target, _as_mask
from .base import TaskAdapter, register_adapter

if TYPE_CHECKING:
    from ..models.loaded import LoadedModel


def main_map(output: Any, size: tuple[int, int]) -> torch.Tensor:
    """The main output map of a dense model ('out' of torchvision's dict, the first of a tuple) at `size`."""
    if isinstance(output, dict):
        output = output["out"] if "out" in output else next(iter(output.values()))
    if isinstance(output, (tuple, list)):
        output = output[0]
    if not isinstance(output, torch.Tensor) or output.ndim != 4:
        raise InvalidParameter("A dense-prediction model must return maps [N, C, H, W].")
    if tuple(output.shape[-2:]) != tuple(size):
        output = F.interpolate(output, size=size, mode="bilinear", align_corners=False)
    return output


def region_mean(values: torch.Tensor, mask: Any) -> torch.Tensor:
    """Mean of values [N, H, W] over a mask [H, W] (or [N, H, W]); [N]."""
    region = _as_mask(mask, values)
    region = region.expand_as(values) if region.ndim == 2 else region.reshape(values.shape)
    return (values * region).flatten(1).sum(1) / region.flatten(1).sum(1).clamp(min=1e-6)


@register_adapter
class SegmentationAdapter(TaskAdapter):
    task = "segmentation"
    target_types = (ClassTarget,)
    binds_targets = True
    scaled_defaults = True

    def forward(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return main_map(module(x), tuple(x.shape[-2:]))

    def predict(self, model: LoadedModel, output: Any, top_k: int, threshold: float) -> list[Target]:
        """Classes present in the first image's argmax, largest area first (background last).

        Each target carries its predicted mask ([H, W] float tensor) and, as score, the class's mean
        probability over it; `threshold` applies to that score.
        """
        logits = output[0].detach().float()
        probs = torch.softmax(logits, dim=0)
        winner = logits.argmax(0)
        present = torch.unique(winner).tolist()
        areas = {c: int((winner == c).sum()) for c in present}
        order = sorted(present, key=lambda c: (c == 0, -areas[c]))
        names = model.categories
        targets: list[Target] = []
        for c in order:
            mask = (winner == c).float()
            score = float(probs[c][mask.bool()].mean())
            if score < threshold:
                continue
            name = names[c] if c < len(names) else f"class {c}"
            targets.append(ClassTarget(int(c), label=name, score=score, mask=mask))
            if len(targets) >= top_k:
                break
        return targets

    def perturbation_score(self, target: Target, output: Any) -> torch.Tensor:
        """For a class: its mean softmax probability over the target's region (the predicted mask if unbound)."""
        if isinstance(target, ClassTarget) and isinstance(output, torch.Tensor) and output.ndim == 4:
            target(output)  # validates the class index with a clear message
            probs = torch.softmax(output.float(), dim=1)[:, target.index]
            mask = target.mask if target.mask is not None else output.argmax(1) == target.index
            return region_mean(probs, mask)
        return target(output)
