"""Colormaps: the named lookup tables (OpenCV's and our own diverging ones), a map in [0, 1] coloured as a
uint8 RGB picture, the matching plotly colorscale and a colour ramp for legends."""

from __future__ import annotations

from functools import cache
from typing import Any

import cv2
import numpy as np

from .maps import as_map

_CV2_MAPS = {
    "inferno": cv2.COLORMAP_INFERNO,
    "jet": cv2.COLORMAP_JET,
    "turbo": cv2.COLORMAP_TURBO,
    "viridis": cv2.COLORMAP_VIRIDIS,
    "magma": cv2.COLORMAP_MAGMA,
    "plasma": cv2.COLORMAP_PLASMA,
    "hot": cv2.COLORMAP_HOT,
    "cividis": cv2.COLORMAP_CIVIDIS,
}
# Our own LUTs (OpenCV has no good diverging map): anchor colours interpolated linearly.
_ANCHORS = {
    "gray": [(0, 0, 0), (255, 255, 255)],
    "coolwarm": [(59, 76, 192), (221, 221, 221), (180, 4, 38)],
    "bwr": [(0, 0, 255), (255, 255, 255), (255, 0, 0)],
}
COLORMAPS: tuple[str, ...] = (*_CV2_MAPS, *_ANCHORS)
DIVERGING: tuple[str, ...] = ("coolwarm", "bwr")


@cache
def colormap_lut(name: str) -> np.ndarray:
    """The colormap as a [256, 3] uint8 RGB table."""
    if name in _CV2_MAPS:
        ramp = np.arange(256, dtype=np.uint8).reshape(256, 1)
        bgr = cv2.applyColorMap(ramp, _CV2_MAPS[name]).reshape(256, 3)
        lut = bgr[:, ::-1].copy()
    elif name in _ANCHORS:
        anchors = np.asarray(_ANCHORS[name], dtype=np.float64)
        positions = np.linspace(0.0, 1.0, len(anchors))
        t = np.linspace(0.0, 1.0, 256)
        lut = np.stack([np.interp(t, positions, anchors[:, c]) for c in range(3)], axis=1)
        lut = np.round(lut).astype(np.uint8)
    else:
        raise ValueError(f"Unknown colormap {name!r}; choose one of {', '.join(COLORMAPS)}.")
    lut.setflags(write=False)
    return lut


def apply_colormap(map01: Any, cmap: str = "inferno") -> np.ndarray:
    """A map in [0, 1] as an HxWx3 uint8 RGB picture."""
    values = np.clip(as_map(map01), 0.0, 1.0)
    index = np.round(values * 255.0).astype(np.uint8)
    return colormap_lut(cmap)[index]


def plotly_colorscale(cmap: str = "inferno", stops: int = 11) -> list[list[Any]]:
    """The same colormap as a plotly colorscale, so figures match the PNG overlays."""
    lut = colormap_lut(cmap)
    scale = []
    for t in np.linspace(0.0, 1.0, stops):
        r, g, b = lut[round(t * 255)]
        scale.append([float(t), f"rgb({r},{g},{b})"])
    return scale


def colorbar(cmap: str = "inferno", width: int = 256, height: int = 12) -> np.ndarray:
    """A horizontal colour ramp from 0 (left) to 1 (right), as uint8 RGB."""
    ramp = np.tile(np.linspace(0.0, 1.0, width, dtype=np.float32), (height, 1))
    return apply_colormap(ramp, cmap)
