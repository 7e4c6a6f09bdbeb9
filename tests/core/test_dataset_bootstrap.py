"""The percentile bootstrap interval, on cases worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from saliency_core.dataset import bootstrap_interval


def test_constant_values_give_a_zero_width_interval() -> None:
    assert bootstrap_interval([0.5] * 17) == (0.5, 0.5, 0.5)


def test_known_sample_matches_numpy_percentiles_of_resampled_means() -> None:
    values = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.55])
    rng = np.random.default_rng(7)
    means = values[rng.integers(0, len(values), size=(500, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    mean, lo, hi = bootstrap_interval(values, resamples=500, seed=7)
    assert mean == pytest.approx(values.mean()) and (lo, hi) == (low, high)
    assert lo < mean < hi
    # a fixed seed: the same interval every time; a narrower level gives a narrower interval
    assert bootstrap_interval(values, resamples=500, seed=7) == (mean, lo, hi)
    _, lo90, hi90 = bootstrap_interval(values, resamples=500, seed=7, level=0.9)
    assert lo <= lo90 and hi90 <= hi


def test_two_values_interval_is_within_them_and_nan_is_left_out() -> None:
    mean, lo, hi = bootstrap_interval([0.0, 1.0, float("nan")])
    assert mean == 0.5 and 0.0 <= lo <= hi <= 1.0
    assert all(np.isnan(v) for v in bootstrap_interval([float("nan")]))
