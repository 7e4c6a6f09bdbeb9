"""Pointing game (Zhang et al. 2016) and energy-based pointing game (Wang et al. 2020, Score-CAM).

The ground truth is a mask [H, W] (non-zero = object) or a box (x0, y0, x1, y1) in input pixels, x1/y1
exclusive for integer boxes: a pixel belongs to the box when its centre (i + 0.5) lies inside it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..errors import InvalidParameter
from ._common import MapLike, as_map, number

Region = MapLike | Sequence[float]


def region_mask(region: Region, shape: tuple[int, int]) -> np.ndarray:
    """A bool mask [H, W] from a mask (same shape as the map) or a box (x0, y0, x1, y1) of finite numbers."""
    try:
        arr = np.asarray(region.detach().cpu().numpy() if isinstance(region, torch.Tensor) else region)
        if arr.dtype.kind not in "biuf":
            raise TypeError
    except (TypeError, ValueError, RuntimeError, NotImplementedError):
        raise InvalidParameter(
            "The ground truth must be a mask [H, W] or a box (x0, y0, x1, y1) of numbers; "
            f"got {type(region).__name__}."
        ) from None
    if not np.isfinite(arr).all():
        raise InvalidParameter("The ground-truth mask or box holds NaN or infinite values.")
    if arr.ndim >= 2:
        mask = arr
        while mask.ndim > 2 and mask.shape[0] == 1:
            mask = mask[0]
        if mask.shape != tuple(shape):
            raise InvalidParameter(f"The mask is {mask.shape} but the map is {tuple(shape)}.")
        return mask.astype(bool)
    box = [float(v) for v in arr.ravel()]
    if len(box) != 4:
        raise InvalidParameter(f"A box is (x0, y0, x1, y1); got {len(box)} numbers.")
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        raise InvalidParameter(f"A box needs x0 < x1 and y0 < y1; got {tuple(box)}.")
    height, width = shape
    cx = np.arange(width) + 0.5
    cy = np.arange(height) + 0.5
    return ((cy >= y0) & (cy <= y1))[:, None] & ((cx >= x0) & (cx <= x1))[None, :]


def max_location(saliency: MapLike) -> tuple[int, int] | None:
    """(row, column) of the map's maximum (first in row-major order on ties); None for a constant map."""
    sal = as_map(saliency)
    finite = sal[np.isfinite(sal)]
    if finite.size == 0 or finite.max() == finite.min():
        return None
    row, col = np.unravel_index(int(np.argmax(sal)), sal.shape)
    return int(row), int(col)


def pointing_distance(saliency: MapLike, region: Region) -> float:
    """Euclidean distance in pixels from the map's maximum to the nearest object pixel (0 inside; inf
    for a constant map, which points nowhere)."""
    sal = as_map(saliency)
    mask = region_mask(region, sal.shape)
    if not mask.any():
        raise InvalidParameter("The ground-truth mask or box covers no pixel of the map.")
    peak = max_location(sal)
    if peak is None:
        return float("inf")
    rows, cols = np.nonzero(mask)
    return float(np.sqrt(((rows - peak[0]) ** 2 + (cols - peak[1]) ** 2).min()))


def pointing_game(saliency: MapLike, mask: Region, tolerance: float = 15) -> bool:
    """Hit when the map's maximum lies within `tolerance` pixels (Euclidean, inclusive) of the object."""
    tolerance = number("tolerance", tolerance, lo=0.0)
    return pointing_distance(saliency, mask) <= tolerance


def energy_pointing(saliency: MapLike, mask_or_box: Region) -> float:
    """Share of the map's positive saliency inside the object, in [0, 1]; 0 when nothing is positive."""
    sal = as_map(saliency)
    mask = region_mask(mask_or_box, sal.shape)
    positive = np.where(np.isfinite(sal), np.clip(sal, 0.0, None), 0.0)
    total = float(positive.sum())
    if total <= 0.0:
        return 0.0
    return float(min(1.0, positive[mask].sum() / total))
