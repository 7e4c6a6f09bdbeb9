"""Saliency maps as float arrays: conversion from tensors, rectification by sign, scales, normalisation to
[0, 1], resizing and differences. Pure numpy (and OpenCV for resizing); no colours, no pictures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

SIGNS = ("positive", "negative", "absolute", "signed")
"""How a signed map becomes intensities: keep the positive part, the negative part, the magnitude, or both
signs around 0.5 ("signed", for diverging colormaps)."""


def to_numpy(value: Any) -> np.ndarray:
    """A float32 numpy array from a numpy array or a torch tensor (any device, with or without grad)."""
    if hasattr(value, "detach"):
        value = value.detach().to("cpu").float().numpy()
    return np.asarray(value, dtype=np.float32)


def as_map(value: Any) -> np.ndarray:
    """A 2-D float32 map: leading singleton dimensions dropped, channels of a [C, H, W] map summed."""
    array = to_numpy(value)
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 3:
        array = array.sum(0)
    if array.ndim != 2:
        raise ValueError(f"Expected a 2-D saliency map, got shape {array.shape}.")
    return array


def rectify(saliency: Any, sign: str) -> np.ndarray:
    """The part of a signed map that `sign` keeps, as intensities >= 0 ("signed" keeps the magnitude)."""
    return _rectify(as_map(saliency), sign)


def _rectify(saliency: np.ndarray, sign: str) -> np.ndarray:
    if sign == "positive":
        return np.maximum(saliency, 0.0)
    if sign == "negative":
        return np.maximum(-saliency, 0.0)
    if sign in ("absolute", "signed"):
        return np.abs(saliency)
    raise ValueError(f"sign must be one of {', '.join(SIGNS)}; got {sign!r}.")


def map_scale(saliency: Any, sign: str = "positive", clip_percentile: float = 100.0) -> float:
    """The value that `normalise` maps to 1: the `clip_percentile` percentile of the rectified map."""
    values = _rectify(as_map(saliency), sign)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0
    return float(np.percentile(finite, float(np.clip(clip_percentile, 0.0, 100.0))))


def shared_scale(maps: Sequence[Any], sign: str = "positive", clip_percentile: float = 100.0) -> float:
    """One scale for several maps (the largest of their scales), so they can be compared on one range."""
    return max((map_scale(m, sign, clip_percentile) for m in maps), default=0.0)


def normalise(
    saliency: Any,
    sign: str = "positive",
    clip_percentile: float = 100.0,
    scale: float | None = None,
) -> np.ndarray:
    """A map in [0, 1] for display.

    The map is rectified by `sign` and divided by `scale` (default: its own `clip_percentile` percentile, as
    captum's visualisation does), then clipped, so values above the percentile saturate. "signed" keeps both
    signs: 0.5 is zero, 1 is +scale and 0 is -scale. A map that is zero everywhere stays zero (0.5 if signed).
    """
    array = as_map(saliency)
    array = np.where(np.isfinite(array), array, 0.0).astype(np.float32)
    hi = map_scale(array, sign, clip_percentile) if scale is None else float(scale)
    if sign == "signed":
        if hi <= 0:
            return np.full(array.shape, 0.5, np.float32)
        return np.clip(0.5 + 0.5 * array / hi, 0.0, 1.0).astype(np.float32)
    values = _rectify(array, sign)
    if hi <= 0:
        return np.zeros(array.shape, np.float32)
    return np.clip(values / hi, 0.0, 1.0).astype(np.float32)


def normalise_many(
    maps: Sequence[Any], sign: str = "positive", clip_percentile: float = 100.0, shared: bool = False
) -> list[np.ndarray]:
    """Several maps in [0, 1]: each on its own range, or all on one shared range."""
    scale = shared_scale(maps, sign, clip_percentile) if shared else None
    return [normalise(m, sign, clip_percentile, scale) for m in maps]


def resize_map(map01: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A map resized (bilinear) to (height, width)."""
    height, width = size
    if map01.shape == (height, width):
        return map01
    return cv2.resize(map01.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


def difference(map_a: Any, map_b: Any) -> np.ndarray:
    """a - b of two maps already in [0, 1] (the second resized to the first): values in [-1, 1]."""
    a = as_map(map_a)
    b = resize_map(as_map(map_b), a.shape)
    return (a - b).astype(np.float32)
