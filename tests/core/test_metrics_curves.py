"""Deletion/insertion curves on a linear model whose curve can be computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from known_models import LinearPixels

import saliency_core as sc
from saliency_core.methods.common import default_blur_sigma, gaussian_blur

H = W = 6


@pytest.fixture(scope="module")
def setup() -> tuple[LinearPixels, torch.Tensor, torch.Tensor]:
    """logits = [w . x + 0.25, 0.25]: the probability of class 0 is sigmoid(w . x)."""
    gen = torch.Generator().manual_seed(3)
    weight = torch.zeros(2, 3, H, W)
    weight[0] = torch.randn(3, H, W, generator=gen)
    x = torch.rand(1, 3, H, W, generator=gen) + 0.1
    return LinearPixels(weight).eval(), weight[0], x


def _expected(w: torch.Tensor, x: torch.Tensor, base: torch.Tensor, order: np.ndarray, steps: int, kind: str):
    n = H * W
    fractions, scores = [], []
    for k in range(steps + 1):
        count = k * n // steps
        chosen = torch.zeros(n, dtype=torch.bool)
        chosen[torch.as_tensor(order[:count], dtype=torch.long)] = True
        chosen = chosen.view(1, 1, H, W)
        image = torch.where(chosen, base, x) if kind == "deletion" else torch.where(chosen, x, base)
        scores.append(float(torch.sigmoid((w * image[0]).sum())))
        fractions.append(count / n)
    return np.array(fractions), np.array(scores)


@pytest.mark.parametrize("kind", ["deletion", "insertion"])
@pytest.mark.parametrize("steps", [4, 5, 36])
@pytest.mark.parametrize("substrate", ["black", "mean", "blur"])
def test_curve_matches_hand_computation(setup, kind: str, steps: int, substrate: str) -> None:
    model, w, x = setup
    saliency = torch.randn(H, W, generator=torch.Generator().manual_seed(steps))
    fn = sc.metrics.deletion if kind == "deletion" else sc.metrics.insertion
    curve = fn(model, x, 0, saliency, steps=steps, substrate=substrate, batch_size=3)
    base = {
        "black": torch.zeros_like(x),  # identity preprocessing: black is 0
        "mean": x.mean(dim=(2, 3), keepdim=True).expand_as(x),
        "blur": gaussian_blur(x, default_blur_sigma(x)),
    }[substrate]
    order = np.argsort(-saliency.numpy().ravel(), kind="stable")
    fractions, scores = _expected(w, x, base, order, steps, kind)
    assert curve.kind == kind and curve.substrate == substrate
    assert curve.fractions.shape == (steps + 1,) and curve.fractions[0] == 0 and curve.fractions[-1] == 1
    np.testing.assert_allclose(curve.fractions, fractions)
    np.testing.assert_allclose(curve.scores, scores, rtol=1e-5, atol=1e-6)
    assert curve.auc == pytest.approx(np.trapezoid(scores, fractions), rel=1e-5)


def test_exact_contribution_order_gives_the_lowest_deletion_curve(setup) -> None:
    """Black substrate: deleting pixel p lowers the logit by sum_c w x; that order minimises every step."""
    model, w, x = setup
    contribution = (w * x[0]).sum(0)
    best = sc.metrics.deletion(model, x, 0, contribution, steps=36, substrate="black")
    worst = sc.metrics.deletion(model, x, 0, -contribution, steps=36, substrate="black")
    insert = sc.metrics.insertion(model, x, 0, contribution, steps=36, substrate="black")
    for seed in range(5):
        rnd = sc.metrics.random_curve(model, x, 0, "deletion", steps=36, substrate="black", seed=seed)
        assert (best.scores <= rnd.scores + 1e-6).all() and (rnd.scores <= worst.scores + 1e-6).all()
        assert rnd.label == "random"
    assert best.auc < worst.auc and insert.auc > best.auc


def test_ties_are_row_major_and_batching_does_not_change_the_curve(setup) -> None:
    model, _, x = setup
    np.testing.assert_array_equal(sc.metrics.pixel_order(np.zeros((H, W))), np.arange(H * W))
    saliency = np.round(np.random.default_rng(1).random((H, W)), 1)  # many ties
    a = sc.metrics.deletion(model, x, 0, saliency, steps=12, batch_size=1)
    b = sc.metrics.deletion(model, x, 0, torch.from_numpy(saliency), steps=12, batch_size=64)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)


def test_random_curve_is_seeded(setup) -> None:
    model, _, x = setup
    a = sc.metrics.random_curve(model, x, 0, "insertion", steps=9, seed=4)
    b = sc.metrics.random_curve(model, x, 0, "insertion", steps=9, seed=4)
    c = sc.metrics.random_curve(model, x, 0, "insertion", steps=9, seed=5)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert not np.array_equal(a.scores, c.scores)


def test_progress_cancel_and_errors(setup) -> None:
    model, _, x = setup
    seen: list[float] = []
    sc.metrics.deletion(
        model, x, 0, np.ones((H, W)), steps=10, batch_size=2, progress=lambda f, _m: seen.append(f)
    )
    assert seen[-1] == 1.0 and seen == sorted(seen)
    with pytest.raises(sc.Cancelled):
        sc.metrics.insertion(model, x, 0, np.ones((H, W)), steps=10, cancel=lambda: True)
    with pytest.raises(sc.InvalidParameter):
        sc.metrics.deletion(model, x, 0, np.ones((H, W + 1)))
    with pytest.raises(sc.InvalidParameter):
        sc.metrics.deletion(model, x, 0, np.ones((H, W)), steps=0)
    with pytest.raises(sc.InvalidParameter):
        sc.metrics.deletion(model, x, 0, np.ones((H, W)), substrate="grey")
    with pytest.raises(sc.InvalidParameter):
        sc.metrics.random_curve(model, x, 0, "both")


def test_curve_uses_the_softmax_probability_and_card_is_json(setup) -> None:
    import json

    model, w, x = setup
    curve = sc.metrics.deletion(model, x, 0, np.ones((H, W)), steps=2)
    assert curve.scores[0] == pytest.approx(float(torch.sigmoid((w * x[0]).sum())), rel=1e-5)
    card = sc.metrics.card_metrics(deletion=curve, pointing=True, energy_pointing=np.float32(0.5), none=None)
    assert json.loads(json.dumps(card)) == card
    assert set(card) == {"deletion", "pointing", "energy_pointing"}
    assert card["deletion"]["auc"] == pytest.approx(curve.auc)


# --- hostile arguments: refused before any pass, with a message --------------------------------------------
def _nan_map() -> np.ndarray:
    sal = np.ones((H, W))
    sal[2, 3] = np.nan
    return sal


@pytest.mark.parametrize("steps", [True, 2.5, "inf", float("nan"), "1e400", -1, None])
def test_steps_must_be_a_whole_number(setup, steps) -> None:
    model, _, x = setup
    with pytest.raises(sc.InvalidParameter, match="Parameter 'steps' must be"):
        sc.metrics.deletion(model, x, 0, np.ones((H, W)), steps=steps)


def test_steps_are_bounded_by_the_servers_limit_before_any_pass(setup) -> None:
    model, _, x = setup
    before = sc.get_engine().forward_count
    with pytest.raises(sc.ResourceLimit, match="max_metric_steps") as caught:
        sc.metrics.insertion(model, x, 0, np.ones((H, W)), steps=10**7)
    assert caught.value.limit == "max_metric_steps" and sc.get_engine().forward_count == before
    previous = sc.set_limits(max_metric_steps=4)
    try:
        with pytest.raises(sc.ResourceLimit):
            sc.metrics.random_curve(model, x, 0, "deletion", steps=5)
        assert len(sc.metrics.random_curve(model, x, 0, "deletion", steps=4).scores) == 5
    finally:
        sc.set_limits(previous)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (_nan_map(), "1 NaN or infinite values"),
        (np.full((H, W), np.inf), "36 NaN or infinite values"),
        (np.full((H, W), "high"), "must hold real numbers"),
        (np.ones((H, W), np.complex64), "must hold real numbers"),
        (torch.ones(H, W, dtype=torch.complex64), "must hold real numbers"),
        (torch.empty(H, W, device="meta"), "ordinary tensor"),
        ([[1, 2], [3]], "must hold real numbers"),
        (np.ones((0, 4)), "2-D map"),
    ],
)
def test_maps_must_be_finite_real_numbers_for_every_metric(setup, bad, message: str) -> None:
    model, _, x = setup
    box = (0, 0, 3, 3)
    calls = [
        lambda: sc.metrics.deletion(model, x, 0, bad, steps=4),
        lambda: sc.metrics.pointing_game(bad, box),
        lambda: sc.metrics.energy_pointing(bad, box),
        lambda: sc.metrics.agreement({"a": bad, "b": np.ones((H, W))}),
        lambda: sc.metrics.similarity(np.ones((H, W)), bad),
    ]
    for call in calls:
        with pytest.raises(sc.InvalidParameter, match=message):
            call()


def test_an_oversized_map_is_refused_by_the_pixel_limit() -> None:
    previous = sc.set_limits(max_pixels=20)
    try:
        with pytest.raises(sc.ResourceLimit, match="max_pixels"):
            sc.metrics.energy_pointing(np.ones((H, W)), (0, 0, 2, 2))
    finally:
        sc.set_limits(previous)


@pytest.mark.parametrize("tolerance", [float("nan"), -1, float("inf"), "far", True])
def test_pointing_tolerance_is_a_finite_non_negative_number(tolerance) -> None:
    with pytest.raises(sc.InvalidParameter, match="Parameter 'tolerance' must be"):
        sc.metrics.pointing_game(np.eye(H), (0, 0, 2, 2), tolerance=tolerance)


@pytest.mark.parametrize(
    ("region", "message"),
    [
        ((0, 0, float("nan"), 3), "NaN or infinite"),
        ((0, 0, float("inf"), 3), "NaN or infinite"),
        (("a", "b", "c", "d"), "mask .* or a box .* of numbers"),
        ((0, 0, 3), "got 3 numbers"),
        (np.full((H, W), np.nan), "NaN or infinite"),
    ],
)
def test_ground_truth_boxes_and_masks_are_checked(region, message: str) -> None:
    with pytest.raises(sc.InvalidParameter, match=message):
        sc.metrics.energy_pointing(np.eye(H), region)


def test_seeds_batch_sizes_and_stages_are_checked(setup) -> None:
    model, _, x = setup
    for seed in (-1, "x", float("nan"), 2**80):
        with pytest.raises(sc.InvalidParameter, match="Parameter 'seed' must be"):
            sc.metrics.random_curve(model, x, 0, "deletion", steps=2, seed=seed)
    with pytest.raises(sc.InvalidParameter, match="Parameter 'batch_size' must be at most 1024"):
        sc.metrics.deletion(model, x, 0, np.ones((H, W)), steps=4, batch_size=10**9)
    with pytest.raises(sc.InvalidParameter, match="listed more than once: a"):
        sc.metrics.cascading_randomization(model, x, 0, "gradient", stages=["a", "b", "a"])
    with pytest.raises(sc.InvalidParameter, match="Stages must be layer names"):
        sc.metrics.independent_randomization(model, x, 0, "gradient", stages=[3])
    with pytest.raises(sc.InvalidParameter, match="Parameter 'seed' must be"):
        sc.metrics.cascading_randomization(model, x, 0, "gradient", seed=float("inf"))
