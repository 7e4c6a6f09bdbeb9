"""Every method that makes more than four passes reports progress and stops when cancelled, and a
cancelled run leaves no hook, no changed weight and nothing in the cache."""

from __future__ import annotations

import pytest
import torch

import saliency_core as sc
from saliency_core.hooks import hook_count
from saliency_core.methods import get_method

SIDE = 64


def _many_pass_methods(model: sc.LoadedModel) -> list[str]:
    """Methods whose default cost on `model` is more than four passes (DeepLIFT's single pass over the
    input and its reference counts four): these must be cancellable."""
    found = []
    for info in sc.list_methods(model=model):
        spec = get_method(info.id)
        params = spec.resolve({}, model.layers())
        estimate = model.engine.estimate(model, info.id, params, x=torch.zeros(1, 3, SIDE, SIDE))
        if estimate.forward_passes > 4:
            found.append(info.id)
    return found


@pytest.fixture(scope="module")
def demo() -> sc.LoadedModel:
    return sc.Engine(device="cpu").load_model("shapes_demo")


@pytest.fixture(scope="module")
def scene() -> torch.Tensor:
    from saliency_core.zoo.scenes import make_scene

    demo_image = make_scene(2_000_123).image
    return torch.nn.functional.interpolate(
        sc.load_model("shapes_demo").preprocess(demo_image).cpu(), size=(SIDE, SIDE), mode="bilinear"
    )


def test_the_long_methods_include_each_family_that_batches(demo) -> None:
    methods = set(_many_pass_methods(demo))
    assert {"smoothgrad", "integrated_gradients", "occlusion", "rise", "scorecam"} <= methods
    # issue 13's batched and sequential methods
    assert {
        "lime",
        "kernel_shap",
        "feature_ablation",
        "xrai",
        "ablation_cam",
        "guided_ig",
        "blur_ig",
    } <= methods
    assert {"gradient_shap", "deeplift_shap"} <= methods


def test_every_long_method_reports_progress_and_stops_when_cancelled(demo, scene) -> None:
    before = {k: v.clone() for k, v in demo.module.state_dict().items()}
    for method in _many_pass_methods(demo):
        reports: list[float] = []

        def progress(fraction: float, message: str, reports: list[float] = reports) -> None:
            reports.append(fraction)

        def cancel(reports: list[float] = reports) -> bool:
            return len(reports) >= 2  # after the first batch's report

        spec = get_method(method)
        target = sc.ClassTarget(0) if spec.needs_target else None
        # One image per batch, so the first batch's report comes well before the end.
        params = {"batch_size": 1} if any(p.name == "batch_size" for p in spec.params) else {}
        demo.engine.cache.clear()
        with pytest.raises(sc.Cancelled):
            demo.engine.attribute(demo, scene, method, target, progress=progress, cancel=cancel, **params)
        assert reports and reports[0] == 0.0 and max(reports) < 1.0, (method, reports)
        assert hook_count(demo.module) == 0, method
        assert not [key for key in list(demo.engine.cache._data) if key[0] == "result"], method
    after = demo.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
