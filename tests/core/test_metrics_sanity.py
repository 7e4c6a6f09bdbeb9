"""Sanity checks (Adebayo et al. 2018) on the demo model: maps must change, the shared model must not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

import saliency_core as sc
from saliency_core.hooks import hook_count
from saliency_core.zoo import HELDOUT_SEED_START
from saliency_core.zoo.scenes import make_scene

SEEDS = [HELDOUT_SEED_START + 600_100 + k for k in range(3)]
DEMO_STAGES = ["fc", "stage4", "stage3", "stage2", "stage1"]


@pytest.fixture(scope="module")
def demo() -> sc.LoadedModel:
    return sc.load_model("shapes_demo")


def _snapshot(module: torch.nn.Module) -> dict[str, bytes]:
    return {k: v.detach().cpu().numpy().tobytes() for k, v in module.state_dict().items()}


def _assert_untouched(model: sc.LoadedModel, before: dict[str, bytes]) -> None:
    assert _snapshot(model.module) == before  # byte-identical weights and batch-norm statistics
    assert hook_count(model.module) == 0
    assert all(p.grad is None for p in model.module.parameters())
    assert not model.module.training


def test_cascading_randomisation_of_gradient_falls_below_half_on_a_copy(demo) -> None:
    before, rng = _snapshot(demo.module), torch.get_rng_state()
    for seed in SEEDS:
        scene = make_scene(seed)
        x = demo.preprocess(scene.image)
        result = sc.metrics.cascading_randomization(demo, x, scene.label, "gradient")
        assert result.kind == "cascading" and result.stages == ["original", *DEMO_STAGES]
        assert len(result.maps) == len(result.spearman) == len(result.ssim) == 6
        assert all(m.shape == (224, 224) for m in result.maps)
        assert result.spearman[0] == 1.0 and result.ssim[0] == 1.0
        assert result.spearman[-1] < 0.5, result.spearman
        torch.testing.assert_close(result.maps[0], sc.attribute(demo, x, "gradient", scene.label).map)
    _assert_untouched(demo, before)
    assert torch.equal(torch.get_rng_state(), rng)  # randomisation used a forked RNG


def test_model_independent_reference_is_flagged(demo) -> None:
    """Sobel edges ignore the model: every stage gives the same map (the check exists to catch this)."""
    scene = make_scene(SEEDS[0])
    result = sc.metrics.cascading_randomization(demo, demo.preprocess(scene.image), None, "edges_sobel")
    np.testing.assert_allclose(result.spearman, 1.0)
    np.testing.assert_allclose(result.ssim, 1.0)


def test_independent_randomisation_and_random_logit_leave_the_model_alone(demo) -> None:
    before = _snapshot(demo.module)
    scene = make_scene(SEEDS[1])
    x = demo.preprocess(scene.image)
    seen: list[float] = []
    result = sc.metrics.independent_randomization(
        demo, x, scene.label, "gradcam", stages=["fc", "stage4"], progress=lambda f, _m: seen.append(f)
    )
    assert result.kind == "independent" and result.stages == ["original", "fc", "stage4"]
    assert max(result.spearman[1:]) < 0.99
    assert seen[-1] == 1.0 and seen == sorted(seen)
    logit = sc.metrics.random_logit(demo, x, scene.label, "gradcam", seed=3)
    assert logit.other.index != scene.label and logit.target.index == scene.label
    assert -1.0 <= logit.spearman <= 1.0 and len(logit.maps) == 2
    _assert_untouched(demo, before)


def test_cancel_and_bad_stage(demo) -> None:
    before = _snapshot(demo.module)
    x = demo.preprocess(make_scene(SEEDS[2]).image)
    calls = iter(range(100))
    with pytest.raises(sc.Cancelled):
        sc.metrics.cascading_randomization(demo, x, 0, "gradient", cancel=lambda: next(calls) > 3)
    with pytest.raises(sc.InvalidParameter):
        sc.metrics.cascading_randomization(demo, x, 0, "gradient", stages=["stage9"])
    _assert_untouched(demo, before)


def test_a_methods_own_seed_travels_in_method_params(demo) -> None:
    x = demo.preprocess(make_scene(SEEDS[0]).image)
    own = {"samples": 2, "seed": 7}
    result = sc.metrics.cascading_randomization(
        demo, x, 0, "smoothgrad", seed=1, stages=["fc"], method_params=own
    )
    assert result.params["seed"] == 7 and result.params["samples"] == 2
    expected = sc.attribute(demo, x, "smoothgrad", 0, **own).map
    torch.testing.assert_close(result.maps[0], expected)
    logit = sc.metrics.random_logit(demo, x, 0, "smoothgrad", seed=3, method_params=own)
    torch.testing.assert_close(logit.maps[0], expected)


def test_default_stages_are_top_level_blocks_output_first() -> None:
    assert sc.metrics.default_stages(sc.load_model("shapes_demo", weights=None).module) == DEMO_STAGES
    resnet = torchvision.models.resnet18(weights=None)
    assert sc.metrics.default_stages(resnet) == ["fc", "layer4", "layer3", "layer2", "layer1", "bn1", "conv1"]
    vgg = torchvision.models.vgg11(weights=None)  # two containers: opened into their layers
    stages = sc.metrics.default_stages(vgg)
    assert stages[0] == "classifier.6" and stages[-1] == "features.0" and len(stages) == 11


def test_randomize_is_seeded_and_resets_batch_norm() -> None:
    a = sc.load_model("shapes_demo", weights=None).module
    b, c = (type(a)() for _ in range(2))
    with torch.no_grad():
        b.stage2[1].running_mean.fill_(3.0)
    rng = torch.get_rng_state()
    sc.metrics.randomize_(b.stage2, seed=7)
    sc.metrics.randomize_(c.stage2, seed=7)
    assert torch.equal(torch.get_rng_state(), rng)
    for (k, v), (_, w) in zip(b.stage2.state_dict().items(), c.stage2.state_dict().items()):
        assert torch.equal(v, w), k
    assert float(b.stage2[1].running_mean.abs().max()) == 0.0
    sc.metrics.randomize_(c.stage2, seed=8)
    assert not torch.equal(b.stage2[0].weight, c.stage2[0].weight)
