"""Percentile bootstrap intervals of a mean, over images, with a fixed seed (the same data give the same
interval on every run)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RESAMPLES = 2000
SEED = 0


def bootstrap_interval(
    values: Sequence[float] | np.ndarray,
    resamples: int = RESAMPLES,
    level: float = 0.95,
    seed: int = SEED,
) -> tuple[float, float, float]:
    """(mean, low, high): the mean of the finite values and the percentile bootstrap interval of it —
    `resamples` resamples of the images with replacement, the (1-level)/2 and (1+level)/2 percentiles of
    their means. NaN values (a metric that does not apply to an image) are left out; (nan, nan, nan)
    when none is left."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    index = rng.integers(0, arr.size, size=(resamples, arr.size))
    means = arr[index].mean(axis=1)
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(arr.mean()), float(low), float(high)
