"""Detection and human-pose models: torchvision's COCO detectors and KeypointRCNN.

Inputs are RGB in [0, 1] (the detectors normalise internally), resized so the longer side is
DETECTION_SIDE with both sides multiples of 32, and each detector's internal resize is set to that
same size: the model sees exactly the preprocessed tensor (no hidden resize or padding), so boxes,
keypoints and CAM grids line up with the image. CAM layers: the backbone's last stage first (every
detection depends on it), then FPN levels as "backbone.fpn:<level>"; a Faster R-CNN detection is pooled
from one FPN level chosen by its size, so maps at the other levels are near zero.
"""

from __future__ import annotations

from functools import cache, partial
from typing import Any

import torchvision.models as tvm
from torch import nn

from .preprocess import Preprocess
from .registry import ModelSpec, register
from .weights import build_with_torchvision_weights

DETECTION_SIDE = 640
SSD_SIDE = 320
PIXELS = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}


@cache
def torchvision_weights(name: str) -> Any:
    """The default weights enum of a torchvision model."""
    return tvm.get_model_weights(name).DEFAULT


def build_torchvision(name: str, kwargs: dict[str, Any], weights: Any) -> nn.Module:
    """A torchvision model: random init without any download (weights=None), or the given weights enum."""
    builder = partial(tvm.get_model, name, **kwargs)
    if weights is None:
        return builder(weights=None, weights_backbone=None)
    return build_with_torchvision_weights(builder, weights)


def detection_preprocess(side: int) -> Preprocess:
    return Preprocess(resize=None, crop=None, max_side=side, upscale=True, multiple=32, **PIXELS)


def _detector(
    name: str,
    title: str,
    layers: tuple[str, ...],
    description: str,
    task: str = "detection",
    side: int = DETECTION_SIDE,
    resize: bool = True,
) -> ModelSpec:
    kwargs = {"min_size": side, "max_size": side} if resize else {}
    extra: dict[str, Any] = {"input_side": side}
    if task == "keypoints":
        extra["keypoint_names"] = tuple(torchvision_weights(name).meta["keypoint_names"])
    return register(
        ModelSpec(
            id=name,
            task=task,
            title=title,
            build=partial(build_torchvision, name, kwargs),
            layers=layers,
            preprocess=detection_preprocess(side),
            categories=lambda: tuple(torchvision_weights(name).meta["categories"]),
            weights_enum=partial(torchvision_weights, name),
            description=description,
            extra=extra,
        )
    )


def resnet_fpn_layers(levels: tuple[str, ...]) -> tuple[str, ...]:
    return ("backbone.body.layer4", "backbone.body.layer3", *(f"backbone.fpn:{k}" for k in levels))


_RCNN_LEVELS = ("0", "1", "2", "3")  # 'pool' feeds only the region proposals, not the class scores
_P3_P7 = ("0", "1", "2", "p6", "p7")

_detector(
    "fasterrcnn_resnet50_fpn",
    "Faster R-CNN ResNet-50 FPN (COCO)",
    resnet_fpn_layers(_RCNN_LEVELS),
    "Two-stage detector: region proposals, then a class score and box per region.",
)
_detector(
    "fasterrcnn_resnet50_fpn_v2",
    "Faster R-CNN ResNet-50 FPN v2 (COCO)",
    resnet_fpn_layers(_RCNN_LEVELS),
    "Faster R-CNN with the improved 2021 training recipe and heads (more accurate, slower).",
)
_detector(
    "fasterrcnn_mobilenet_v3_large_fpn",
    "Faster R-CNN MobileNet V3 Large FPN (COCO)",
    ("backbone.body.16", "backbone.body.13", "backbone.fpn:1", "backbone.fpn:0"),
    "Light two-stage detector; both FPN levels are at stride 32.",
)
_detector(
    "retinanet_resnet50_fpn_v2",
    "RetinaNet ResNet-50 FPN v2 (COCO)",
    resnet_fpn_layers(_P3_P7),
    "One-stage detector with focal loss; each detection comes from one FPN level (P3-P7).",
)
_detector(
    "fcos_resnet50_fpn",
    "FCOS ResNet-50 FPN (COCO)",
    resnet_fpn_layers(_P3_P7),
    "Anchor-free one-stage detector; scores are sqrt(class x centerness).",
)
_detector(
    "ssdlite320_mobilenet_v3_large",
    "SSDlite 320 MobileNet V3 Large (COCO)",
    ("backbone.features.0", "backbone.features.1", "backbone.extra.0"),
    "Fast single-shot detector (stretches inputs to 320x320); features.0 feeds every detection, features.1 and the extras only some.",
    side=SSD_SIDE,
    resize=False,
)
_detector(
    "keypointrcnn_resnet50_fpn",
    "Keypoint R-CNN ResNet-50 FPN (COCO persons)",
    resnet_fpn_layers(_RCNN_LEVELS),
    "Person detector with 17 body keypoints per person; explains one keypoint's heatmap logit.",
    task="keypoints",
)
