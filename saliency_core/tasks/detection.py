"""Object detection: one dict per image (boxes in input pixels, differentiable scores, labels).

torchvision detectors in eval mode take a list of images, resize them internally and return post-NMS
detections in input coordinates; their scores keep the autograd graph back to the input, so gradient
and CAM methods work on a matched detection's score. Perturbation methods use D-RISE's idea of
scoring each perturbed image by its best detection of the same class, weighted by overlap.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..geometry import as_detections, label_ious
from ..targets import BoxTarget, Target
from .base import TaskAdapter, register_adapter

if TYPE_CHECKING:
    from ..models.loaded import LoadedModel


def category_name(model: LoadedModel, index: int) -> str:
    names = model.categories
    return names[index] if 0 <= index < len(names) else f"class {index}"


def run_detector(module: nn.Module, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """Call a detector on a batch [B, 3, H, W] (as a list of images, as torchvision expects)."""
    out = module(list(x)) if x.ndim == 4 else module(x)
    if isinstance(out, tuple):  # scripted torchvision detectors return (losses, detections)
        out = out[1]
    return [dict(d) for d in as_detections(out)]


def by_score(detections: dict[str, torch.Tensor], threshold: float) -> Iterator[tuple[int, float]]:
    """(index, score) of one image's detections that score `threshold` or more, best score first."""
    order = torch.argsort(detections["scores"].detach(), descending=True)
    for i in order.tolist():
        score = float(detections["scores"][i].detach())
        if score < threshold:
            return
        yield i, score


def drise_scores(box: tuple[float, float, float, float], category: int, output: Any) -> torch.Tensor:
    """Per image, max over detections of IoU(box, detection box) x score, over detections of `category`.

    This is D-RISE's similarity (Petsiuk et al. 2021) with a one-hot class vector: torchvision's post-NMS
    outputs carry one class score per detection, not the full class-probability vector, so the class term
    is the detection's score when its label matches and 0 otherwise. 0 when nothing overlaps.
    """
    values = []
    for d in as_detections(output):
        similarity = label_ious(box, category, d) * d["scores"].detach().float()
        values.append(similarity.max() if similarity.numel() else similarity.new_zeros(()))
    return torch.stack(values).float()


@register_adapter
class DetectionAdapter(TaskAdapter):
    task = "detection"
    target_types = (BoxTarget,)
    binds_targets = True
    scaled_defaults = True
    heavy_passes = True

    def forward(self, module: nn.Module, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        return run_detector(module, x)

    def predict(self, model: LoadedModel, output: Any, top_k: int, threshold: float) -> list[Target]:
        """Detections of the first image, best score first, as BoxTargets named by the model's categories."""
        d = as_detections(output)[0]
        targets: list[Target] = []
        for i, score in by_score(d, threshold):
            if len(targets) >= top_k:
                break
            label = int(d["labels"][i])
            targets.append(
                BoxTarget(d["boxes"][i].detach(), label, name=category_name(model, label), score=score)
            )
        return targets

    def perturbation_score(self, target: Target, output: Any) -> torch.Tensor:
        """D-RISE-style: IoU with the chosen box x class score, best over detections of its class."""
        if isinstance(target, BoxTarget):
            return drise_scores(target.box, target.category, output)
        return target(output)
