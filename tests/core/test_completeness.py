"""Integrated Gradients completeness: attributions sum to f(x) - f(baseline) within 1% at 256 steps."""

from __future__ import annotations

import pytest
import torch
import torchvision

import saliency_core as sc


@pytest.mark.parametrize("baseline", ["zero", "black", "blur", "uniform"])
def test_completeness_on_the_demo_model(baseline: str) -> None:
    engine = sc.Engine(device="cpu")
    model = engine.load_model("shapes_demo")
    sample = next(s for s in sc.list_samples() if s.kind == "synthetic")
    x = model.preprocess(sample.image())
    target = model.predict(x)[0]
    a = engine.attribute(model, x, "integrated_gradients", target, steps=256, baseline=baseline)
    gap = a.extras["score_difference"]
    assert abs(gap) > 0.5, "the test needs a real score difference"
    assert abs(a.map.sum().item() - gap) <= 0.01 * abs(gap)
    assert abs(a.extras["completeness_delta"]) <= 0.01 * abs(gap)


def test_completeness_on_a_random_resnet() -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(1, 3, 112, 112, generator=torch.Generator().manual_seed(0))
    a = sc.Engine(device="cpu").attribute(model, x, "integrated_gradients", 5, steps=256, batch_size=64)
    gap = a.extras["score_difference"]
    with torch.no_grad():
        assert gap == pytest.approx((model(x)[0, 5] - model(torch.zeros_like(x))[0, 5]).item(), rel=1e-4)
    assert abs(a.map.sum().item() - gap) <= 0.01 * abs(gap)


def test_few_steps_are_visibly_less_complete() -> None:
    """The check can fail: with 2 Riemann steps the sum misses f(x) - f(0) by far more than 1%."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(1, 3, 112, 112, generator=torch.Generator().manual_seed(0))
    a = sc.Engine(device="cpu").attribute(model, x, "integrated_gradients", 5, steps=2, rule="riemann_left")
    assert abs(a.extras["completeness_delta"]) > 0.01 * abs(a.extras["score_difference"])
