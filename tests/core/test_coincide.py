"""Coincidences: the CAM group on a global-average-pool + linear head, verified on the maps; not claimed
where the condition fails (a hidden layer in the head, or a layer further from the pooling)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import saliency_core as sc


class Net(nn.Module):
    """conv-ReLU-conv, global average pooling, then a linear head (or one with a hidden layer)."""

    def __init__(self, hidden: bool) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        layers = [nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)] if hidden else [nn.Linear(8, 4)]
        self.head = nn.Sequential(nn.Flatten(), *layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


def _model(hidden: bool) -> sc.LoadedModel:
    torch.manual_seed(0)
    return sc.Engine(device="cpu").resolve(Net(hidden).eval())


def test_cam_group_coincides_on_a_pool_and_linear_head() -> None:
    model = _model(hidden=False)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    assert model.layers()[0] == "features.2"
    found = sc.metrics.coincidences(model, x, "hirescam", 0)
    assert [c.methods for c in found] == [("gradcam", "xgradcam", "hirescam", "cam")]
    assert found[0].correlation > 0.9999
    # the claim is true: the maps are equal up to a positive scale
    maps = [np.asarray(sc.attribute(model, x, m, 0, layer="features.2").map) for m in found[0].methods]
    for other in maps[1:]:
        scale = other.sum() / maps[0].sum()
        assert scale > 0
        np.testing.assert_allclose(other, maps[0] * scale, rtol=1e-4, atol=1e-6 * np.abs(other).max())
    assert "global average pooling" in found[0].sentence() and "HiResCAM" in found[0].sentence()
    assert sc.metrics.coincidences(model, x, "gradcam_pp", 0) == []  # not in the group


def test_not_claimed_where_the_condition_fails() -> None:
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    hidden = _model(hidden=True)
    assert sc.metrics.coincidences(hidden, x, "gradcam", 0) == []
    flat = _model(hidden=False)
    # a layer before the ReLU and the second conv: the gradient varies over it, and so do the maps
    assert sc.metrics.coincidences(flat, x, "gradcam", 0, layer="features.0") == []
    a = np.asarray(sc.attribute(flat, x, "gradcam", 0, layer="features.0").map).ravel()
    b = np.asarray(sc.attribute(flat, x, "hirescam", 0, layer="features.0").map).ravel()
    assert np.corrcoef(a, b)[0, 1] < 0.999


@pytest.mark.parametrize("method", ["gradcam", "cam", "xgradcam"])
def test_the_demo_model_has_the_cam_group(method: str) -> None:
    model = sc.load_model("shapes_demo", weights=None)
    sample = next(s for s in sc.list_samples() if s.kind == "synthetic")
    x = model.preprocess(sc.load_image(sample.path))
    (found,) = sc.metrics.coincidences(model, x, method)
    assert set(found.methods) == {"gradcam", "xgradcam", "hirescam", "cam"}
