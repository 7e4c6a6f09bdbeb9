"""Agreement of maps: Spearman and SSIM matrices with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

import saliency_core as sc


@pytest.fixture(scope="module")
def maps() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(32, 40))
    return {"a": a, "b": a + 0.5 * rng.normal(size=a.shape), "c": rng.normal(size=a.shape)}


def test_identical_maps_agree_fully_and_negative_is_minus_one(maps) -> None:
    a = maps["a"]
    same = sc.metrics.agreement({"x": a, "y": torch.from_numpy(a.copy())})
    np.testing.assert_allclose(same.spearman, 1.0)
    np.testing.assert_allclose(same.ssim, 1.0)
    signed = sc.metrics.agreement({"x": a, "-x": -a}, absolute=False)
    assert signed.spearman[0, 1] == pytest.approx(-1.0)
    assert signed.ssim[0, 1] < 0
    absolute = sc.metrics.agreement({"x": a, "-x": -a})
    assert absolute.spearman[0, 1] == pytest.approx(1.0) and absolute.ssim[0, 1] == pytest.approx(1.0)


def test_matrix_matches_scipy_and_skimage(maps) -> None:
    result = sc.metrics.agreement(maps)
    assert result.names == ["a", "b", "c"]
    assert result.spearman.shape == result.ssim.shape == (3, 3)
    np.testing.assert_allclose(result.spearman, result.spearman.T)
    np.testing.assert_allclose(result.ssim, result.ssim.T)
    for i, p in enumerate(maps):
        for j, q in enumerate(maps):
            x, y = np.abs(maps[p]), np.abs(maps[q])
            assert result.spearman[i, j] == pytest.approx(spearmanr(x.ravel(), y.ravel())[0], abs=1e-9)
            nx = (x - x.min()) / (x.max() - x.min())
            ny = (y - y.min()) / (y.max() - y.min())
            assert result.ssim[i, j] == pytest.approx(structural_similarity(nx, ny, data_range=1.0), abs=1e-9)
    assert result.spearman[0, 1] > 0.5 > abs(result.spearman[0, 2])
    assert sc.metrics.similarity(maps["a"], maps["b"]) == pytest.approx(
        (result.spearman[0, 1], result.ssim[0, 1])
    )


def test_rank_correlation_ignores_monotone_rescaling(maps) -> None:
    a = np.abs(maps["a"])
    rho, _ = sc.metrics.similarity(a, a**3 + 7.0)
    assert rho == pytest.approx(1.0)


def test_constant_maps_and_shape_errors() -> None:
    flat = np.zeros((8, 8))
    ramp = np.arange(64.0).reshape(8, 8)
    assert sc.metrics.similarity(flat, flat) == (1.0, 1.0)
    assert sc.metrics.similarity(flat, ramp)[0] == 0.0
    with pytest.raises(sc.InvalidParameter):
        sc.metrics.agreement({"a": flat, "b": np.zeros((8, 9))})
    with pytest.raises(sc.InvalidParameter):
        sc.metrics.similarity(flat, np.zeros((9, 8)))
    assert sc.metrics.agreement({}).names == []
