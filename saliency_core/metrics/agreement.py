"""How much maps agree: Spearman rank correlation and SSIM, pairwise (the Compare page's matrix)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidParameter
from ._common import MapLike, as_map


@dataclass(frozen=True, eq=False)
class Agreement:
    """Pairwise similarity of named maps: `spearman` and `ssim` are [n, n] with ones on the diagonal."""

    names: list[str]
    spearman: np.ndarray
    ssim: np.ndarray
    absolute: bool = True

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: names and nested lists."""
        return {
            "names": list(self.names),
            "absolute": self.absolute,
            "spearman": self.spearman.tolist(),
            "ssim": self.ssim.tolist(),
        }


def _prepare(saliency: MapLike, absolute: bool) -> np.ndarray:
    sal = as_map(saliency)
    sal = np.where(np.isfinite(sal), sal, 0.0)
    return np.abs(sal) if absolute else sal


def _unit(sal: np.ndarray) -> np.ndarray:
    """Min-max normalised to [0, 1] (a constant map becomes zeros)."""
    lo, hi = float(sal.min()), float(sal.max())
    return (sal - lo) / (hi - lo) if hi > lo else np.zeros_like(sal)


def _spearman_matrix(maps: list[np.ndarray]) -> np.ndarray:
    """Pearson correlation of ranks; a constant map correlates 1 with another constant map, else 0."""
    from scipy.stats import rankdata  # here, not at import: scipy and skimage cost a second at start-up

    ranks = np.stack([rankdata(m.ravel()) for m in maps])
    ranks -= ranks.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(ranks, axis=1)
    constant = norms == 0
    unit = ranks / np.where(constant, 1.0, norms)[:, None]
    out = np.clip(unit @ unit.T, -1.0, 1.0)
    out[np.ix_(constant, constant)] = 1.0
    np.fill_diagonal(out, 1.0)
    return out


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    if min(a.shape) < 7:
        win = min(a.shape) if min(a.shape) % 2 else min(a.shape) - 1
        if win < 3:
            return float(np.allclose(a, b))
        return float(structural_similarity(a, b, data_range=1.0, win_size=win))
    return float(structural_similarity(a, b, data_range=1.0))


def similarity(a: MapLike, b: MapLike, absolute: bool = True) -> tuple[float, float]:
    """(Spearman rank correlation, SSIM) of two maps, of their absolute values by default.

    SSIM compares the maps min-max normalised to [0, 1] (data_range 1).
    """
    x, y = _prepare(a, absolute), _prepare(b, absolute)
    if x.shape != y.shape:
        raise InvalidParameter(f"Maps must have the same shape to compare; got {x.shape} and {y.shape}.")
    rho = float(_spearman_matrix([x, y])[0, 1])
    return rho, _ssim(_unit(x), _unit(y))


def agreement(maps: Mapping[str, MapLike], absolute: bool = True) -> Agreement:
    """Spearman and SSIM matrices between every pair of named maps (same shape, e.g. Attribution.map)."""
    names = [str(n) for n in maps]
    arrays = [_prepare(m, absolute) for m in maps.values()]
    if not arrays:
        return Agreement([], np.zeros((0, 0)), np.zeros((0, 0)), absolute)
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise InvalidParameter(f"Maps must have the same shape to compare; got {sorted(shapes)}.")
    n = len(arrays)
    units = [_unit(a) for a in arrays]
    ssim = np.ones((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            ssim[i, j] = ssim[j, i] = _ssim(units[i], units[j])
    return Agreement(names, _spearman_matrix(arrays), ssim, absolute)
