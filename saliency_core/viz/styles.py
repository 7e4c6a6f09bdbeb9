"""How a map is drawn: as a coloured overlay, as a grayscale magnitude picture, or as a smoothed overlay.

Pixel-level maps (gradients, guided backpropagation, integrated gradients) are speckle when drawn as a
coloured overlay at half opacity; their papers show the magnitude alone in grayscale (Simonyan et al. 2014,
Springenberg et al. 2015, Smilkov et al. 2017) or blur it before overlaying it. A method declares its style
(`MethodSpec.display`); these functions draw any of them.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from .colormaps import apply_colormap
from .maps import as_map, normalise, rectify
from .pictures import overlay, to_rgb_uint8

STYLES = ("overlay", "gray", "smoothed")
"""overlay: the map coloured and blended over the picture; gray: the map's magnitude alone, white = strong;
smoothed: the magnitude blurred (Gaussian), then coloured and blended over the picture."""
SMOOTH_FRACTION = 0.02  # the blur's sigma as a fraction of the map's longer side (4.5 px at 224 px)


def check_style(style: str) -> str:
    if style not in STYLES:
        raise ValueError(f"display style must be one of {', '.join(STYLES)}; got {style!r}.")
    return style


def smooth(saliency: Any, sigma: float | None = None) -> np.ndarray:
    """A map blurred with a Gaussian of `sigma` pixels (default: SMOOTH_FRACTION of its longer side)."""
    array = as_map(saliency)
    array = np.where(np.isfinite(array), array, 0.0).astype(np.float32)
    if sigma is None:
        sigma = max(1.0, SMOOTH_FRACTION * max(array.shape))
    if sigma <= 0:
        return array
    return cv2.GaussianBlur(array, (0, 0), sigmaX=float(sigma), sigmaY=float(sigma))


def style_sign(style: str, sign: str) -> str:
    """The sign drawn: grayscale and smoothed styles show the magnitude unless another sign is asked for
    explicitly ("auto" and "signed" become "absolute": a grayscale picture has no room for two signs)."""
    if check_style(style) == "overlay":
        return sign
    return "absolute" if sign in ("auto", "signed") else sign


def style_map(
    saliency: Any,
    style: str = "overlay",
    sign: str = "positive",
    clip_percentile: float = 100.0,
    scale: float | None = None,
    sigma: float | None = None,
) -> np.ndarray:
    """The map in [0, 1] as the style draws it: normalised by `sign` (see `normalise`), and for "smoothed"
    rectified, blurred and then normalised, so the clip percentile applies to what is seen."""
    if check_style(style) != "smoothed":
        return normalise(saliency, sign, clip_percentile, scale)
    raw = as_map(saliency)
    raw = np.where(np.isfinite(raw), raw, 0.0).astype(np.float32)
    if sign == "signed":  # both signs around 0.5: blur the signed values themselves
        return normalise(smooth(raw, sigma), "signed", clip_percentile, scale)
    return normalise(smooth(rectify(raw, sign), sigma), "positive", clip_percentile, scale)


def style_picture(
    image: Any,
    map01: Any,
    style: str = "overlay",
    cmap: str = "inferno",
    alpha: float = 0.5,
    alpha_by_value: bool = False,
) -> np.ndarray:
    """The picture of a map already in [0, 1] (from `style_map`): "gray" is the map alone in grayscale at
    the picture's size; "overlay" and "smoothed" blend the coloured map over the picture."""
    if check_style(style) == "gray":
        picture = to_rgb_uint8(image)
        values = np.clip(as_map(map01), 0.0, 1.0)
        if values.shape != picture.shape[:2]:
            values = cv2.resize(values, (picture.shape[1], picture.shape[0]), interpolation=cv2.INTER_LINEAR)
        return apply_colormap(values, "gray")
    return overlay(image, map01, cmap, alpha, alpha_by_value)
