"""Maps of hand-weighted models, checked against values worked out on paper."""

from __future__ import annotations

import math

import pytest
import torch
from known_models import LinearPixels, RegionMean, SpatialHead, TinyCam

import saliency_core as sc


def t(rows: list) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


@pytest.fixture
def engine() -> sc.Engine:
    return sc.Engine(device="cpu")


# --- pixel gradients on a linear model ----------------------------------------------------------
W = t([[[[1, 2], [3, 4]]], [[[-1, 0], [0.5, 0]]]])  # [classes=2, C=1, 2, 2]
X = t([[[[1, -1], [2, 0.5]]]])  # [1, 1, 2, 2]


def test_gradient_is_the_weight_row(engine: sc.Engine) -> None:
    a = engine.attribute(LinearPixels(W), X, "gradient", 0)
    assert torch.equal(a.raw, t([[[1, 2], [3, 4]]]))
    assert torch.equal(a.map, t([[1, 2], [3, 4]]))
    b = engine.attribute(LinearPixels(W), X, "gradient", 1)
    assert torch.equal(b.map, t([[-1, 0], [0.5, 0]]))


def test_gradient_x_input(engine: sc.Engine) -> None:
    a = engine.attribute(LinearPixels(W), X, "gradient_x_input", 0)
    assert torch.equal(a.map, t([[1, -2], [6, 2]]))


@pytest.mark.parametrize("rule", ["gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_middle"])
def test_integrated_gradients_of_a_linear_model_is_gradient_times_input(engine: sc.Engine, rule: str) -> None:
    a = engine.attribute(LinearPixels(W), X, "integrated_gradients", 0, steps=7, rule=rule)
    assert torch.allclose(a.map, t([[1, -2], [6, 2]]), atol=1e-5)
    # completeness: 1 - 2 + 6 + 2 = 7 = f(x) - f(0) (the bias cancels)
    assert a.map.sum().item() == pytest.approx(7.0, abs=1e-5)
    assert abs(a.extras["completeness_delta"]) < 1e-5


def test_smoothgrad_of_a_linear_model(engine: sc.Engine) -> None:
    model = LinearPixels(W)
    mean = engine.attribute(model, X, "smoothgrad", 0, samples=5, noise=0.3)
    assert torch.allclose(mean.map, t([[1, 2], [3, 4]]), atol=1e-6)
    var = engine.attribute(model, X, "smoothgrad", 0, samples=5, noise=0.3, mode="vargrad")
    assert var.map.abs().max() < 1e-5
    sq = engine.attribute(model, X, "smoothgrad", 0, samples=5, noise=0.3, mode="smoothgrad_sq")
    assert torch.allclose(sq.map, t([[1, 4], [9, 16]]), atol=1e-5)


# --- occlusion ------------------------------------------------------------------------------------
def _pixel_model(values: list) -> LinearPixels:
    """score = sum of A * x; with x = 1 the score drop of hiding a region is the sum of A over it."""
    a = t(values)
    return LinearPixels(a[None, None])


def test_occlusion_non_overlapping_windows(engine: sc.Engine) -> None:
    model = _pixel_model([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 2, 0], [0, 0, 0, 3]])
    a = engine.attribute(model, torch.ones(1, 1, 4, 4), "occlusion", 0, patch=2, stride=2)
    assert torch.allclose(a.map, t([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 5, 5], [0, 0, 5, 5]]))


def test_occlusion_overlapping_windows_average_the_drops(engine: sc.Engine) -> None:
    model = _pixel_model([[1, 0, 0], [0, 0, 0], [0, 0, 2]])
    a = engine.attribute(model, torch.ones(1, 1, 3, 3), "occlusion", 0, patch=2, stride=1)
    # windows: top-left drop 1, top-right 0, bottom-left 0, bottom-right 2; each pixel averages its windows
    assert torch.allclose(a.map, t([[1, 0.5, 0], [0.5, 0.75, 1], [0, 1, 2]]))
    assert a.forward_passes == 1 + 4


def test_occlusion_windows_overhanging_the_edge(engine: sc.Engine) -> None:
    model = _pixel_model([[1, 0, 0], [0, 0, 0], [0, 0, 2]])
    a = engine.attribute(model, torch.ones(1, 1, 3, 3), "occlusion", 0, patch=2, stride=2)
    assert torch.allclose(a.map, t([[1, 1, 0], [1, 1, 0], [0, 0, 2]]))


def test_occlusion_mean_baseline_hides_with_the_image_mean(engine: sc.Engine) -> None:
    model = _pixel_model([[1, 0], [0, 1]])
    x = t([[[[4, 0], [0, 0]]]])  # mean 1: hiding the first pixel drops 4 - 1 = 3, the last 0 - 1 = -1
    a = engine.attribute(model, x, "occlusion", 0, patch=1, stride=1, baseline="mean")
    assert torch.allclose(a.map, t([[3, 0], [0, -1]]))


# --- CAM family on a global-average-pool network ------------------------------------------------
HEAD = t([[1, -1], [0.5, 2]])
# relu(x): A0 = [[1, 2], [0, 0]], A1 = [[0, 1], [3, 0]]
XC = t([[[[1, 2], [0, -1]], [[0, 1], [3, 0]]]])


@pytest.mark.parametrize(
    ("method", "cls", "expected"),
    [
        ("cam", 0, [[1, 1], [-3, 0]]),
        ("cam", 1, [[0.5, 3], [6, 0]]),
        ("gradcam", 0, [[0.25, 0.25], [-0.75, 0]]),  # gradients are w / (h*w) = w / 4 everywhere
        ("hirescam", 0, [[0.25, 0.25], [-0.75, 0]]),
        ("xgradcam", 0, [[0.25, 0.25], [-0.75, 0]]),
        ("layercam", 0, [[0.25, 0.5], [0, 0]]),
        # Grad-CAM++: alpha_k = 1 / (2 + sum(A_k) g_k); weights 4 * g_k * alpha_k = 0.5/2.375 and 0.5
        ("gradcam_pp", 1, [[0.5 / 2.375, 1 / 2.375 + 0.5], [1.5, 0]]),
    ],
)
def test_cam_variants_on_a_pooled_linear_head(
    engine: sc.Engine, method: str, cls: int, expected: list
) -> None:
    a = engine.attribute(TinyCam(HEAD), XC, method, cls, layer="features")
    assert a.raw.shape == (2, 2)
    assert torch.allclose(a.raw, t(expected), atol=1e-5), a.raw


V = t([[[1, 0], [0, -1]], [[2, 2], [0, 0]]])
XS = t([[[[1, 2], [3, 4]], [[1, 0], [0, 1]]]])


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("gradcam", [[1, 0], [0, 1]]),  # channel weights: mean(V0) = 0, mean(V1) = 1
        ("hirescam", [[3, 0], [0, -4]]),
        ("layercam", [[3, 0], [0, 0]]),
        ("xgradcam", [[0.7, -0.6], [-0.9, -0.2]]),  # weights (1 - 4) / 10 and 2 / 2
    ],
)
def test_cam_variants_with_position_dependent_gradients(
    engine: sc.Engine, method: str, expected: list
) -> None:
    a = engine.attribute(SpatialHead(V), XS, method, 0, layer="features")
    assert torch.allclose(a.raw, t(expected), atol=1e-5), a.raw


def test_input_gradient_through_an_identity_layer(engine: sc.Engine) -> None:
    a = engine.attribute(SpatialHead(V), XS, "gradient", 0)
    assert torch.equal(a.raw, V)


def test_eigencam_of_rank_one_activations_is_the_centred_pattern(engine: sc.Engine) -> None:
    pattern = t([[0, 1], [2, 5]])
    x = torch.stack([pattern, 2 * pattern])[None]
    a = engine.attribute(SpatialHead(V), x, "eigencam", layer="features")
    # the principal direction is (1, 2)/sqrt(5); projections are (P - mean P) * sqrt(5), sign as the activations
    assert torch.allclose(a.raw, (pattern - 2) * math.sqrt(5), atol=1e-4)


def test_cam_upsamples_bilinearly_to_the_input() -> None:
    engine = sc.Engine(device="cpu")
    model = TinyCam(HEAD)
    model.features.insert(0, torch.nn.AvgPool2d(2))
    x = torch.rand(1, 2, 8, 8)
    a = engine.attribute(model, x, "gradcam", 0, layer="features")
    assert a.raw.shape == (4, 4) and a.map.shape == (8, 8)
    expected = torch.nn.functional.interpolate(a.raw[None, None], size=(8, 8), mode="bilinear")[0, 0]
    assert torch.allclose(a.map, expected)


# --- RISE: an analytic property ----------------------------------------------------------------------
def test_rise_concentrates_on_the_only_region_the_model_sees(engine: sc.Engine) -> None:
    box = (8, 8, 16, 16)
    a = engine.attribute(
        RegionMean(box), torch.ones(1, 3, 32, 32), "rise", 0, masks=2000, cell=8, p=0.5, score="raw", seed=3
    )
    inside = a.raw[8:16, 8:16].mean().item()  # raw: the paper's map (map subtracts the mean score)
    far = torch.cat([a.raw[24:, :].flatten(), a.raw[:, 24:].flatten()]).mean().item()
    # far from the box, mask and score are independent: E[S M(u)] / p = E[S] = p (a white image)
    assert far == pytest.approx(0.5, abs=0.05)
    assert inside > far + 0.1
    assert a.map.argmax().item() // 32 in range(6, 18)


def test_rise_is_deterministic_by_seed_and_independent_of_batch_size(engine: sc.Engine) -> None:
    model = RegionMean((2, 2, 6, 6))
    x = torch.rand(1, 3, 16, 16)
    a = engine.attribute(model, x, "rise", 0, masks=40, cell=4, seed=7, batch_size=3, score="raw")
    b = engine.attribute(
        model, x, "rise", 0, masks=40, cell=4, seed=7, batch_size=16, score="raw", use_cache=False
    )
    c = engine.attribute(model, x, "rise", 0, masks=40, cell=4, seed=8, score="raw")
    assert torch.allclose(a.map, b.map, atol=1e-6)
    assert not torch.allclose(a.map, c.map)
