"""Activation maximisation raises its objective and never changes the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import saliency_core as sc
from saliency_core.hooks import hook_count
from saliency_core.zoo.scenes import SHAPE_CLASSES, make_scene


@pytest.fixture(scope="module")
def demo() -> sc.LoadedModel:
    return sc.load_model("shapes_demo")


def _snapshot(module: torch.nn.Module) -> dict[str, bytes]:
    return {k: v.detach().cpu().numpy().tobytes() for k, v in module.state_dict().items()}


def test_class_score_rises_from_noise_and_model_is_untouched(demo) -> None:
    before = _snapshot(demo.module)
    star = SHAPE_CLASSES.index("star")
    seen: list[float] = []
    result = sc.metrics.activation_maximization(
        demo, star, steps=24, seed=1, progress=lambda f, _m: seen.append(f)
    )
    assert result.objective == f"class {star} (star)"
    assert result.final_score > result.initial_score + 2.0, (result.initial_score, result.final_score)
    assert result.scores.shape == (24,) and np.isfinite(result.scores).all()
    assert result.image.shape == (224, 224, 3) and result.image.dtype == np.uint8
    assert seen[-1] == 1.0
    lo, hi = demo.from_pixels(torch.zeros(1, 3, 1, 1)), demo.from_pixels(torch.ones(1, 3, 1, 1))
    assert (result.input >= lo - 1e-5).all() and (result.input <= hi + 1e-5).all()
    again = sc.metrics.activation_maximization(demo, star, steps=24, seed=1)
    np.testing.assert_array_equal(result.image, again.image)  # seeded
    assert _snapshot(demo.module) == before
    assert hook_count(demo.module) == 0 and all(p.grad is None for p in demo.module.parameters())


def test_channel_objective_and_image_start(demo) -> None:
    before = _snapshot(demo.module)
    x = demo.preprocess(make_scene(1_600_200).image)
    result = sc.metrics.activation_maximization(
        demo, "channel", layer="stage3", channel=5, steps=12, start="image", x=x, jitter=2
    )
    assert result.objective == "channel 5 of stage3"
    assert result.final_score > result.initial_score
    assert not torch.equal(result.input, x.cpu())
    assert _snapshot(demo.module) == before and hook_count(demo.module) == 0


def test_errors_and_cancel(demo) -> None:
    with pytest.raises(sc.InvalidParameter):
        sc.metrics.activation_maximization(demo, "neuron")
    with pytest.raises(sc.InvalidParameter):
        sc.metrics.activation_maximization(demo, "channel", layer="stage4", channel=10_000, steps=1)
    with pytest.raises(sc.InvalidParameter):
        sc.metrics.activation_maximization(demo, 0, start="image")
    with pytest.raises(sc.Cancelled):
        sc.metrics.activation_maximization(demo, 0, steps=5, cancel=lambda: True)
    assert hook_count(demo.module) == 0
