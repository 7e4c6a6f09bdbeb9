"""Classification models: torchvision ImageNet classifiers and the bundled shapes demo."""

from __future__ import annotations

import math
from functools import cache, partial
from pathlib import Path
from typing import Any

import torch
import torchvision.models as tvm
from torch import nn

from .preprocess import Preprocess, from_weights_enum
from .registry import ModelSpec, register
from .weights import build_with_torchvision_weights


def vit_tokens_to_grid(tokens: torch.Tensor) -> torch.Tensor:
    """ViT tokens [N, 1 + h*w, C] -> a grid [N, C, h, w], class token dropped."""
    patches = tokens[:, 1:, :]
    side = math.isqrt(patches.shape[1])
    if side * side != patches.shape[1]:
        raise ValueError(f"Cannot arrange {patches.shape[1]} patch tokens in a square grid.")
    return patches.reshape(tokens.shape[0], side, side, tokens.shape[2]).permute(0, 3, 1, 2)


@cache
def _enum(name: str) -> Any:
    return tvm.get_model_weights(name).DEFAULT


def _preprocess_from(name: str) -> Preprocess:
    return from_weights_enum(_enum(name))


def _build_torchvision(name: str, weights: Any) -> nn.Module:
    builder = partial(tvm.get_model, name)
    if weights is None:
        return builder(weights=None)
    return build_with_torchvision_weights(builder, weights)


def _imagenet(
    name: str,
    title: str,
    layers: tuple[str, ...],
    description: str,
    cam_head: str | None = None,
    gap_activation: str | None = None,
    reshape: Any = None,
) -> ModelSpec:
    return register(
        ModelSpec(
            id=name,
            task="classification",
            title=title,
            build=partial(_build_torchvision, name),
            layers=layers,
            preprocess=_preprocess_from(name),
            categories=lambda: tuple(_enum(name).meta["categories"]),
            weights_enum=partial(_enum, name),
            description=description,
            cam_head=cam_head,
            gap_activation=gap_activation,
            reshape=reshape or (lambda _layer: None),
        )
    )


def _resnet_layers() -> tuple[str, ...]:
    return ("layer4", "layer3", "layer2", "layer1")


_imagenet("resnet18", "ResNet-18 (ImageNet)", _resnet_layers(), "Residual network, 18 layers.", cam_head="fc")
_imagenet("resnet50", "ResNet-50 (ImageNet)", _resnet_layers(), "Residual network, 50 layers.", cam_head="fc")
_imagenet(
    "vgg16",
    "VGG-16 (ImageNet)",
    ("features.29", "features.30", "features.22", "features.15"),
    "Plain 3x3-conv stack; features.29 is conv5_3 after ReLU (14x14).",
)
_imagenet(
    "densenet121",
    "DenseNet-121 (ImageNet)",
    ("features", "features.denseblock4", "features.transition3", "features.denseblock3"),
    "Densely connected network; 'features' ends with the last batch norm (7x7).",
    cam_head="classifier",
    gap_activation="relu",
)
_imagenet(
    "alexnet",
    "AlexNet (ImageNet)",
    ("features.11", "features.12", "features.9", "features.7"),
    "The 2012 classic; features.11 is conv5 after ReLU (13x13).",
)
_imagenet(
    "mobilenet_v3_large",
    "MobileNet V3 Large (ImageNet)",
    ("features.16", "features.12", "features.6"),
    "Efficient mobile network; features.16 is the last 960-channel conv (7x7).",
)
_imagenet(
    "efficientnet_b0",
    "EfficientNet-B0 (ImageNet)",
    ("features.8", "features.6", "features.4"),
    "Compound-scaled network; features.8 is the last 1280-channel conv (7x7).",
    cam_head="classifier.1",
)
_imagenet(
    "convnext_tiny",
    "ConvNeXt-Tiny (ImageNet)",
    ("features.7", "features.5", "features.3"),
    "Modernised ResNet; features.7 is the last stage (7x7).",
)


def _vit_reshape(layer: str) -> Any:
    return vit_tokens_to_grid if layer.startswith("encoder.layers") else None


_imagenet(
    "vit_b_16",
    "ViT-B/16 (ImageNet)",
    tuple(f"encoder.layers.encoder_layer_{i}.ln_1" for i in (11, 10, 8, 6)),
    "Vision transformer, 16x16 patches; CAM layers are block norms as a 14x14 token grid (class token dropped).",
    reshape=_vit_reshape,
)


def _assets() -> Path:
    from ..samples import assets_dir

    return assets_dir()


def _shapes_build(weights: Any) -> nn.Module:
    from ..zoo.shapes_net import build_shapes_net

    return build_shapes_net()


def _shapes_categories() -> tuple[str, ...]:
    from ..zoo.scenes import SHAPE_CLASSES

    return tuple(SHAPE_CLASSES)


def _shapes_spec() -> ModelSpec:
    from ..zoo import shapes_net

    return ModelSpec(
        id="shapes_demo",
        task="classification",
        title="Shapes demo CNN (bundled, offline)",
        build=_shapes_build,
        layers=tuple(shapes_net.CAM_LAYERS),
        preprocess=Preprocess(resize=224, crop=224, mean=tuple(shapes_net.MEAN), std=tuple(shapes_net.STD)),
        categories=_shapes_categories,
        bundled_weights=lambda: _assets() / "shapes_demo.safetensors",
        description="A small CNN trained by this project on synthetic shape scenes with known object masks.",
        cam_head="fc",
    )


register(_shapes_spec())


def _shapes_vit_spec() -> ModelSpec:
    from ..zoo import shapes_vit

    return ModelSpec(
        id="shapes_vit_demo",
        task="classification",
        title="Shapes demo ViT (bundled, offline)",
        build=lambda _weights: shapes_vit.build_shapes_vit(),
        layers=shapes_vit.CAM_LAYERS,
        preprocess=Preprocess(resize=224, crop=224, mean=tuple(shapes_vit.MEAN), std=tuple(shapes_vit.STD)),
        categories=_shapes_categories,
        bundled_weights=lambda: _assets() / "shapes_vit_demo.safetensors",
        description=(
            "A small hybrid torchvision VisionTransformer (the shapes CNN's conv stages as patch embedding, "
            "then 4 attention blocks of 4 heads on 14x14 tokens) trained by this project on the synthetic "
            "shape scenes; CAM layers are block norms as a token grid."
        ),
        reshape=_vit_reshape,
    )


register(_shapes_vit_spec())
