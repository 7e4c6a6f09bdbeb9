"""Boxes and heatmaps: IoU matching of a chosen box to detections, and reading a heatmap at a point.

Boxes are (x0, y0, x1, y1) in input pixels. Matching uses detached boxes (which detection is meant is
a discrete choice); only the values read from the matched detection carry gradients.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from .errors import InvalidParameter

Box = tuple[float, float, float, float]


def as_box(box: Any) -> Box:
    """A box as four floats, checked to have positive width and height."""
    values = box.detach().cpu().flatten().tolist() if isinstance(box, torch.Tensor) else list(box)
    if len(values) != 4:
        raise InvalidParameter(f"A box is (x0, y0, x1, y1); got {box!r}.")
    x0, y0, x1, y1 = (float(v) for v in values)
    if not (x1 > x0 and y1 > y0):
        raise InvalidParameter(f"A box needs x1 > x0 and y1 > y0; got {(x0, y0, x1, y1)}.")
    return (x0, y0, x1, y1)


def ious(box: Box, boxes: torch.Tensor) -> torch.Tensor:
    """IoU of one box with each of `boxes` [M, 4] (detached), [M]."""
    if boxes.numel() == 0:
        return boxes.new_zeros(0)
    query = torch.tensor([box], dtype=boxes.dtype, device=boxes.device)
    # Imported here: torchvision.ops pulls in torch._dynamo (over a second), which the app's first page
    # does not need.
    from torchvision.ops import box_iou

    return box_iou(query, boxes.detach())[0]


def label_ious(box: Box, category: int, detection: dict[str, torch.Tensor]) -> torch.Tensor:
    """IoU of `box` with each detection of class `category` (0 for other classes), [M]."""
    overlap = ious(box, detection["boxes"])
    return overlap * (detection["labels"].to(overlap.device) == category).to(overlap.dtype)


def best_match(box: Box, category: int, detection: dict[str, torch.Tensor], min_iou: float) -> int | None:
    """Index of the detection of class `category` overlapping `box` most, if its IoU >= min_iou."""
    overlap = label_ious(box, category, detection)
    if overlap.numel() == 0:
        return None
    best = int(overlap.argmax())
    return best if float(overlap[best]) >= min_iou and float(overlap[best]) > 0 else None


def as_detections(output: Any) -> Sequence[dict[str, torch.Tensor]]:
    """Detection outputs as one dict per image (boxes [M, 4], scores [M], labels [M])."""
    if isinstance(output, dict):
        output = [output]
    if not isinstance(output, (list, tuple)) or not all(
        isinstance(d, dict) and {"boxes", "scores", "labels"} <= set(d) for d in output
    ):
        raise InvalidParameter(
            "A box or keypoint target needs detections: one dict per image with boxes, scores and labels."
        )
    return output


def graph_zero(detection: dict[str, torch.Tensor]) -> torch.Tensor:
    """A zero that stays connected to the autograd graph when the detection scores are (zero gradient)."""
    return detection["scores"].sum() * 0.0


def sample_at(
    values: torch.Tensor, box: Box | torch.Tensor, point: tuple[float, float], mode: str = "bicubic"
) -> torch.Tensor:
    """The value of a map `values` [h, w] laid over `box` at the image point (x, y), differentiably.

    The map covers the box as torchvision's keypoint heads lay their heatmaps over a detection: cell
    centres at box corner + (i + 0.5) * box side / map side, edges replicated as torchvision's
    bicubic upsampling does. Outside the box the value is 0 (with zero gradient).
    """
    x0, y0, x1, y1 = (float(v) for v in (box.tolist() if isinstance(box, torch.Tensor) else box))
    width, height = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    gx = (point[0] - x0) / width * 2.0 - 1.0
    gy = (point[1] - y0) / height * 2.0 - 1.0
    if not (-1.0 <= gx <= 1.0 and -1.0 <= gy <= 1.0):
        return values.sum() * 0.0
    grid = torch.tensor([[[[gx, gy]]]], dtype=values.dtype, device=values.device)
    sampled = F.grid_sample(values[None, None], grid, mode=mode, padding_mode="border", align_corners=False)
    return sampled[0, 0, 0, 0]
