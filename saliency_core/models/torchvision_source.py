"""torchvision:<name>: any classification, detection (keypoints) or segmentation builder of torchvision.

Specs follow the curated ones: a curated model's layers, head and inputs are reused under the prefixed
id; other architectures get preprocessing from their weights enum's transforms (ImageNet defaults
without one), detector inputs as in `detection.py`, and CAM layers guessed from their structure.
"""

from __future__ import annotations

import inspect
from functools import cache, partial
from typing import Any

import torchvision.models as tvm
from torch import nn

from ..errors import InvalidParameter
from .detection import DETECTION_SIDE, SSD_SIDE, detection_preprocess
from .layers import (
    build_probe,
    cam_head_for,
    find_classifier,
    grid_reshape,
    guess_layers,
    probe_shapes,
)
from .preprocess import Preprocess, from_weights_enum
from .registry import _REGISTRY, ModelSpec
from .segmentation import SEGMENTATION_SIDE
from .sources import unknown
from .weights import build_with_torchvision_weights

_DEFAULT_CLASSES = {"classification": 1000, "detection": 91, "keypoints": 2, "segmentation": 21}
_PROBE_SIDE = 224  # segmentation and classification probes; detectors are not probed (see below)


@cache
def tasks() -> dict[str, str]:
    """Builder name -> task, for every builder this source offers."""
    out = {name: "classification" for name in tvm.list_models(module=tvm)}
    for name in tvm.list_models(module=tvm.detection):
        out[name] = "keypoints" if name.startswith("keypointrcnn") else "detection"
    out.update({name: "segmentation" for name in tvm.list_models(module=tvm.segmentation)})
    return out


def names() -> list[str]:
    return list(tasks())


@cache
def default_weights(name: str) -> Any:
    """The builder's DEFAULT weights enum, or None when it has none."""
    try:
        return tvm.get_model_weights(name).DEFAULT
    except (ValueError, AttributeError):
        return None


def _kwargs(name: str, task: str, num_classes: int | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {} if num_classes is None else {"num_classes": num_classes}
    if task in ("detection", "keypoints") and not name.startswith("ssd"):
        # The detector's own resize set to the preprocessed size: it sees exactly the input tensor.
        kwargs.update(min_size=DETECTION_SIDE, max_size=DETECTION_SIDE)
    if task == "segmentation" and "aux_loss" in inspect.signature(tvm.get_model_builder(name)).parameters:
        kwargs["aux_loss"] = True  # the published weights hold the auxiliary head; files then fit
    return kwargs


def _build(name: str, task: str, kwargs: dict[str, Any], weights: Any) -> nn.Module:
    builder = partial(tvm.get_model, name, **kwargs)
    if weights is None:
        backbone = {} if task == "classification" else {"weights_backbone": None}  # no hidden download
        return builder(weights=None, **backbone)
    try:
        return build_with_torchvision_weights(builder, weights)
    except ValueError as exc:  # torchvision refuses a head size its weights do not have
        classes = len(weights.meta.get("categories", ()))
        raise InvalidParameter(
            f"The default weights of torchvision:{name} have {classes} classes, not "
            f"{kwargs.get('num_classes')}: give a weights file with that head, or use random init. ({exc})"
        ) from None


def _preprocess(name: str, task: str) -> Preprocess:
    if task in ("detection", "keypoints"):
        side = SSD_SIDE if name.startswith("ssdlite") else 300 if name.startswith("ssd") else DETECTION_SIDE
        return detection_preprocess(side)
    if task == "segmentation":
        return Preprocess(resize=None, crop=None, max_side=SEGMENTATION_SIDE, upscale=True, multiple=16)
    enum = default_weights(name)
    if enum is None:
        return Preprocess()
    return from_weights_enum(enum)


def _geometry(probe: nn.Module) -> tuple[tuple[int, int] | None, int | None, bool]:
    """(token grid, prefix tokens, channels-last) of torchvision's transformers; CNNs: (None, None, False)."""
    if isinstance(probe, tvm.VisionTransformer):
        side = probe.image_size // probe.patch_size
        return (side, side), 1, False
    return None, None, isinstance(probe, tvm.SwinTransformer)


def _guess(probe: nn.Module, task: str, shapes: dict, reshape: Any) -> list[str]:
    if task == "classification":
        return guess_layers(probe, shapes, reshape)
    # Detectors and segmenters: the backbone's last stages (every prediction depends on them).
    backbone = probe.get_submodule("backbone.body") if hasattr(probe.backbone, "body") else probe.backbone
    prefix = "backbone.body." if backbone is not probe.backbone else "backbone."
    if hasattr(backbone, "extra"):  # SSD: every detection depends on `features`, some on the extras
        return [f"{prefix}features", f"{prefix}extra.0"]
    inner = {k.removeprefix(prefix): v for k, v in shapes.items() if k.startswith(prefix)}
    layers = [prefix + n for n in guess_layers(backbone, inner, reshape)[:2]]
    if task == "segmentation" and shapes.get("classifier.0") is not None:
        layers.insert(1, "classifier.0")
    return layers


def spec(name: str, num_classes: int | None) -> ModelSpec:
    """A ModelSpec for torchvision:<name> with `num_classes` outputs (None: the builder's default)."""
    from . import catalog  # noqa: F401  (the curated specs this source reuses)

    task = tasks().get(name)
    if task is None:
        raise unknown("torchvision", name, names())
    enum = default_weights(name)
    meta_names = tuple(enum.meta.get("categories", ())) if enum is not None else ()
    classes = num_classes or len(meta_names) or _DEFAULT_CLASSES[task]
    kwargs = _kwargs(name, task, num_classes)
    build = partial(_build, name, task, kwargs)
    probe = build_probe(lambda: build(None))
    grid, prefix, nhwc = _geometry(probe)
    reshape = grid_reshape(grid, prefix, nhwc)
    # Detectors are not probed: their forward decodes boxes from real values (no meta pass), and a CPU
    # pass at 640 px costs seconds; their layers come from the structure alone.
    shapes = {} if task in ("detection", "keypoints") else probe_shapes(probe, (_PROBE_SIDE, _PROBE_SIDE))
    curated = _REGISTRY.get(name)
    if curated is not None and (curated.source != "curated" or curated.task != task):
        curated = None
    layers = list(curated.layers) if curated is not None else _guess(probe, task, shapes, reshape(""))
    classifier = find_classifier(probe, classes)
    if curated is not None:
        cam_head, gap = curated.cam_head, curated.gap_activation
    else:
        cam_head = cam_head_for(probe, classifier, layers[0] if layers else None, shapes)
        gap = "relu" if cam_head and name.startswith("densenet") else None  # DenseNet pools relu(features)
    extra: dict[str, Any] = {
        "source": "torchvision",
        "architecture": name,
        "num_classes": classes,
        "classifier": classifier,
    }
    if task in ("detection", "keypoints"):
        extra["input_side"] = _preprocess(name, task).max_side
    if task == "keypoints" and enum is not None:
        extra["keypoint_names"] = tuple(enum.meta["keypoint_names"])
    return ModelSpec(
        id=f"torchvision:{name}",
        task=task,
        title=f"torchvision {name}" + (f" ({classes} classes)" if num_classes is not None else ""),
        build=build,
        layers=tuple(layers),
        preprocess=curated.preprocess if curated is not None else _preprocess(name, task),
        categories=lambda: meta_names,
        weights_enum=partial(default_weights, name) if enum is not None else None,
        description=curated.description if curated is not None else f"torchvision.models {name} ({task}).",
        cam_head=cam_head,
        gap_activation=gap,
        reshape=reshape,
        extra=extra,
    )
