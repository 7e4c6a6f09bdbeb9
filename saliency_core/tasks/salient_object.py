"""Salient-object segmentation: one saliency logit map [N, 1, H, W] at the input's size.

A target is the salient region (MaskTarget: the predicted region, logit > 0, fixed when bound, or a
region the user gives); gradients explain the logits summed over it, perturbation methods the mean
saliency probability over it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import InvalidParameter
from ..targets import MaskTarget, Target
from .base import TaskAdapter, register_adapter
from .segmentation import main_map, region_mean

if TYPE_CHECKING:
    from ..models.loaded import LoadedModel


@register_adapter
class SalientObjectAdapter(TaskAdapter):
    task = "salient_object"
    target_types = (MaskTarget,)
    binds_targets = True
    scaled_defaults = True

    def forward(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The main (fused) saliency logits; U²-Net returns them first, before its side outputs."""
        out = main_map(module(x), tuple(x.shape[-2:]))
        if out.shape[1] != 1:
            raise InvalidParameter(f"A salient-object model must output one channel; got {out.shape[1]}.")
        return out

    def predict(self, model: LoadedModel, output: Any, top_k: int, threshold: float) -> list[Target]:
        """The predicted salient region (probability > 0.5), scored by its mean probability; [] if empty."""
        logits = output[:1].detach()
        mask = (logits[0, 0] > 0).float()
        if float(mask.sum()) == 0 or top_k < 1:
            return []
        score = float(torch.sigmoid(logits[0, 0].float())[mask.bool()].mean())
        if score < threshold:
            return []
        share = float(mask.mean())
        return [MaskTarget(mask=mask, label=f"salient region ({share:.0%} of the image)", score=score)]

    def perturbation_score(self, target: Target, output: Any) -> torch.Tensor:
        if isinstance(target, MaskTarget) and isinstance(output, torch.Tensor):
            probs = torch.sigmoid(output.float())[:, 0]
            mask = target.mask if target.mask is not None else probs > 0.5
            return region_mean(probs, mask)
        return target(output)
