"""Human pose: person detections with 17 COCO keypoints each, plus the keypoint heatmap logits.

torchvision's KeypointRCNN returns each keypoint's location and its logit there, but not the heatmaps;
the adapter records them with a forward hook on `roi_heads.keypoint_predictor` that lives only for
the duration of the call, and adds them per image as `keypoint_heatmaps` [M, 17, 56, 56] (logits,
laid over each detection's box). They keep the autograd graph, so a keypoint's logit at a fixed
location is differentiable with respect to the input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from ..geometry import as_detections, ious, sample_at
from ..targets import PERSON, KeypointTarget, Target
from .base import register_adapter
from .detection import DetectionAdapter, by_score, run_detector

if TYPE_CHECKING:
    from ..models.loaded import LoadedModel

HEATMAP_MODULE = "roi_heads.keypoint_predictor"


def run_keypoint_detector(module: nn.Module, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """Detections with `keypoint_heatmaps` added (empty [0, K, h, w] where the module has none)."""
    captured: list[torch.Tensor] = []
    predictor = module.get_submodule(HEATMAP_MODULE) if _has(module, HEATMAP_MODULE) else None
    handle = (
        predictor.register_forward_hook(lambda _m, _i, out: captured.append(out))
        if predictor is not None
        else None
    )
    try:
        detections = run_detector(module, x)
    finally:
        if handle is not None:
            handle.remove()
    if not captured or "keypoints" not in detections[0]:
        return detections
    heatmaps = captured[-1]
    counts = [len(d["boxes"]) for d in detections]
    if heatmaps.shape[0] != sum(counts):  # not the call that made these detections: leave them out
        return detections
    for d, maps in zip(detections, torch.split(heatmaps, counts)):
        d["keypoint_heatmaps"] = maps
    return detections


def _has(module: nn.Module, name: str) -> bool:
    try:
        module.get_submodule(name)
    except AttributeError:
        return False
    return True


def keypoint_probability(target: KeypointTarget, output: Any) -> torch.Tensor:
    """Per image, max over persons of IoU(box, person box) x the keypoint's probability at its location.

    The probability is the spatial softmax of the person's heatmap (what KeypointRCNN is trained on),
    read at the target's fixed location; 0 when no person overlaps the box or the point is outside it.
    Without heatmaps in the output, the sigmoid of the keypoint's logit stands in for the probability.
    """
    k = int(target.keypoint)
    values = []
    for d in as_detections(output):
        best = torch.zeros((), device=d["scores"].device)
        heatmaps = d.get("keypoint_heatmaps")
        overlap = ious(target.box, d["boxes"]) * (d["labels"] == target.category).float()
        for i in torch.nonzero(overlap > 0).flatten().tolist():
            location = target.location or tuple(d["keypoints"][i, k, :2].tolist())
            if heatmaps is None:
                p = torch.sigmoid(d["keypoints_scores"][i, k].float())
            else:
                logits = heatmaps[i, k].float()
                probs = F.softmax(logits.flatten(), 0).reshape(logits.shape)
                p = sample_at(probs, d["boxes"][i], location, mode="bilinear")
            best = torch.maximum(best, overlap[i] * p.detach())
        values.append(best)
    return torch.stack(values).float()


@register_adapter
class KeypointAdapter(DetectionAdapter):
    task = "keypoints"
    target_types = (KeypointTarget,)

    def forward(self, module: nn.Module, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        return run_keypoint_detector(module, x)

    def predict(self, model: LoadedModel, output: Any, top_k: int, threshold: float) -> list[Target]:
        """One target per detected person (best first): its most confident keypoint, with all 17 attached.

        Switch keypoints with `target.with_keypoint(name)`; `threshold` applies to the person's score.
        """
        d = as_detections(output)[0]
        names = tuple(model.spec.extra.get("keypoint_names", ())) if model.spec is not None else ()
        targets: list[Target] = []
        for i, score in by_score(d, threshold):
            if len(targets) >= top_k:
                break
            if int(d["labels"][i]) != PERSON:
                continue
            points = d["keypoints"][i].detach().float().cpu().clone()
            if "keypoints_scores" in d:
                points[:, 2] = d["keypoints_scores"][i].detach().float().cpu()
            best = int(points[:, 2].argmax())
            extra = {"keypoint_names": names} if len(names) == len(points) else {}
            target = KeypointTarget(
                d["boxes"][i].detach(),
                best,
                person=f"person {len(targets) + 1}",
                person_score=score,
                keypoints=points.numpy(),
                **extra,
            )
            targets.append(target.with_keypoint(best))
        return targets

    def perturbation_score(self, target: Target, output: Any) -> torch.Tensor:
        if isinstance(target, KeypointTarget):
            return keypoint_probability(target, output)
        return super().perturbation_score(target, output)
