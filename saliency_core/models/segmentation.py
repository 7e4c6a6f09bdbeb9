"""Semantic segmentation: torchvision's models with the 21 Pascal VOC classes (trained on COCO).

Inputs are ImageNet-normalised with the longer side SEGMENTATION_SIDE (torchvision's preset resizes the
shorter side to 520; smaller here for CPU speed); outputs are class logits at the input's size.
"""

from __future__ import annotations

from functools import partial

from .detection import build_torchvision, torchvision_weights
from .preprocess import Preprocess
from .registry import ModelSpec, register

SEGMENTATION_SIDE = 480


def _segmenter(
    name: str, title: str, layers: tuple[str, ...], description: str, aux: bool = True
) -> ModelSpec:
    # The published weights include the auxiliary head; random init builds it too so that files fit.
    kwargs = {"aux_loss": True} if aux else {}
    return register(
        ModelSpec(
            id=name,
            task="segmentation",
            title=title,
            build=partial(build_torchvision, name, kwargs),
            layers=layers,
            preprocess=Preprocess(
                resize=None, crop=None, max_side=SEGMENTATION_SIDE, upscale=True, multiple=16
            ),
            categories=lambda: tuple(torchvision_weights(name).meta["categories"]),
            weights_enum=partial(torchvision_weights, name),
            description=description,
        )
    )


_segmenter(
    "deeplabv3_resnet50",
    "DeepLabV3 ResNet-50 (VOC classes)",
    ("backbone.layer4", "classifier.0", "backbone.layer3"),
    "Dilated ResNet-50 (stride 8) with atrous spatial pyramid pooling; classifier.0 is the ASPP output.",
)
_segmenter(
    "deeplabv3_mobilenet_v3_large",
    "DeepLabV3 MobileNet V3 Large (VOC classes)",
    ("backbone.16", "classifier.0", "backbone.13"),
    "Light DeepLabV3 on a dilated MobileNet V3 (stride 16).",
)
_segmenter(
    "fcn_resnet50",
    "FCN ResNet-50 (VOC classes)",
    ("backbone.layer4", "classifier.2", "backbone.layer3"),
    "Fully convolutional network on a dilated ResNet-50; classifier.2 is the head's hidden layer.",
)
_segmenter(
    "lraspp_mobilenet_v3_large",
    "LR-ASPP MobileNet V3 Large (VOC classes)",
    ("backbone.16", "classifier.cbr", "backbone.4"),
    "Lite reduced ASPP: the fastest segmenter here; backbone.4 is its low-level (stride 8) branch.",
    aux=False,
)
