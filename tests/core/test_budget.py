"""The resource budget: batch sizes from max_batch_bytes (measured activation memory), and the work of a
request (passes × input pixels) checked against max_work_pixels before any pass."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torchvision
from known_models import one_torch_thread
from torch import nn

import saliency_core as sc
from saliency_core.methods.base import get_method

MiB = 2**20


@pytest.fixture(autouse=True)
def restore_limits() -> Iterator[None]:
    previous = sc.limits()
    yield
    sc.set_limits(previous)


def _batch_sizes(module: nn.Module) -> tuple[list[int], torch.utils.hooks.RemovableHandle]:
    sizes: list[int] = []
    handle = module.register_forward_pre_hook(lambda _m, args: sizes.append(int(args[0].shape[0])))
    return sizes, handle


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    ).eval()


def test_the_measured_bytes_per_image_give_the_batch_size() -> None:
    module = _tiny()
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    # Leaf outputs of one image: conv and ReLU 8x16x16 floats each, pool and flatten 8 each; plus the input.
    per_image = (2 * 8 * 16 * 16 + 2 * 8) * 4 + 3 * 16 * 16 * 4
    sc.set_limits(max_batch_bytes=per_image * 2 * 5 + 100)  # five images with their backward
    engine = sc.Engine(device="cpu")
    model = engine.wrap(module)
    assert engine.budget_batch_size(model, x, grad=True) is None  # not measured yet
    sizes, handle = _batch_sizes(module)
    try:
        a = engine.attribute(model, x, "integrated_gradients", 0, steps=12, batch_size=12)
    finally:
        handle.remove()
    assert engine.budget_batch_size(model, x, grad=True) == 5
    assert engine.budget_batch_size(model, x, grad=False) == 10  # forward only: no gradient share
    assert engine.auto_batch_size(x, model, grad=True) == 5
    # The first batch is the measured image, then batches of 5; the rest is the target and baseline.
    assert sizes[:4] == [1, 5, 5, 1] and max(sizes) == 5
    assert any("lowered to 5" in note for note in a.notes)


def test_smoothgrad_with_a_huge_batch_runs_in_batches_that_fit_and_gives_the_same_map() -> None:
    sc.set_limits(max_batch_bytes=32 * MiB)
    engine = sc.Engine(device="cpu")
    model = engine.load_model("shapes_demo")
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    sizes, handle = _batch_sizes(model.module)
    with one_torch_thread():
        try:
            big = engine.attribute(model, x, "smoothgrad", 0, samples=1000, batch_size=1024)
        finally:
            handle.remove()
        derived = engine.budget_batch_size(model, x, grad=True)
        assert derived is not None and 1 < derived < 1000
        assert max(sizes) <= derived  # no forward batch was larger than the budget allows
        assert sum(sizes) >= 1000
        assert big.notes and f"batch_size 1024 was lowered to {derived}" in big.notes[0]
        small = sc.Engine(device="cpu").attribute(model, x, "smoothgrad", 0, samples=1000, batch_size=derived)
    assert not small.notes  # nothing was lowered
    assert torch.allclose(big.map, small.map, rtol=1e-5, atol=1e-6)


def test_the_automatic_batch_size_respects_the_limit_before_any_measurement() -> None:
    x = torch.zeros(1, 3, 224, 224)
    engine = sc.Engine(device="cpu")
    sc.set_limits(max_batch_bytes=4 * 1024 * MiB)
    assert engine.auto_batch_size(x) == 16  # the CPU's usual size fits
    sc.set_limits(max_batch_bytes=1024 * MiB)
    assert engine.auto_batch_size(x) == 8  # 1 GiB // (200 x a 588 KiB input)
    assert engine.auto_batch_size(x, grad=True) == 4  # and a backward's share
    image = 3 * 224 * 224 * 4
    sc.set_limits(max_batch_bytes=image * 200 * 3)  # three images at the cautious guess of 200 x the input
    assert engine.auto_batch_size(x) == 3
    sc.set_limits(max_batch_bytes=1)
    assert engine.auto_batch_size(x) == 1  # never zero


def _counted(module: nn.Module) -> list[int]:
    calls: list[int] = []
    module.register_forward_pre_hook(lambda _m, args: calls.append(1))
    return calls


def test_integrated_gradients_over_the_work_limit_is_refused_before_any_pass() -> None:
    engine = sc.Engine(device="cpu")
    model = engine.load_model("shapes_demo")
    side = 1536
    assert 2050 * side * side > sc.limits().max_work_pixels  # 1026 forward + 1024 backward passes
    calls = _counted(model.module)
    x = torch.zeros(1, 3, side, side)
    with pytest.raises(sc.ResourceLimit, match="max_work_pixels") as info:
        engine.attribute(model, x, "integrated_gradients", steps=1024)  # default target: a pass if allowed
    assert calls == [] and engine.forward_count == 0
    message = str(info.value)
    assert "1026 forward + 1024 backward passes" in message and "lower steps" in message
    assert info.value.limit == "max_work_pixels"
    model.module._forward_pre_hooks.clear()


def test_the_refusal_names_what_to_change_for_each_method() -> None:
    sc.set_limits(max_work_pixels=1e6)
    engine = sc.Engine(device="cpu")
    torch.manual_seed(0)
    module = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    x = torch.rand(1, 3, 64, 64)
    with pytest.raises(sc.ResourceLimit, match="raise patch, stride"):
        engine.attribute(module, x, "occlusion", 0, patch=8, stride=2)
    with pytest.raises(sc.ResourceLimit, match="lower samples"):
        engine.attribute(module, x, "smoothgrad", 0, samples=200)
    with pytest.raises(sc.ResourceLimit, match="lower masks"):
        engine.attribute(module, x, "rise", 0, masks=300)
    with pytest.raises(sc.ResourceLimit, match="a layer with fewer channels"):
        engine.attribute(module, x, "scorecam", 0, layer="layer4")  # 513 passes x 4096 pixels
    # Under the limit: runs.
    # 4 windows, the unoccluded reference, and incremental occlusion's plan (its activations, a check window)
    assert engine.attribute(module, x, "occlusion", 0, patch=32, stride=32).forward_passes == 4 + 1 + 2


@pytest.mark.parametrize("model_id", ["shapes_demo", "resnet18"])
@pytest.mark.parametrize("side", [224, 512])
def test_every_default_setting_fits_the_default_work_limit(model_id: str, side: int) -> None:
    engine = sc.Engine(device="cpu")
    model = engine.load_model(model_id, weights=None)
    x = torch.zeros(1, 3, side, side)
    for info in sc.list_methods():
        spec = get_method(info.id)
        resolved = spec.resolve(sc.method_defaults(info.id, model.task, side), model.layers())
        engine.check_work(model, spec, resolved, x)  # raises when over
