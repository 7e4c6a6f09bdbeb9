"""Out of memory: a batch that runs out is retried at half the size; a request that runs out one image at a
time moves to the CPU (on an accelerator) or is refused with a ResourceLimit; the engine keeps working.

This machine has no GPU, so faults are injected: the engine's batched passes raise torch's out-of-memory
error, and `has_cpu_fallback` is told that the model's device is an accelerator.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import saliency_core as sc
from saliency_core.device import free_memory, is_out_of_memory
from saliency_core.engine import core
from saliency_core.engine.context import RunContext
from saliency_core.hooks import hook_count
from saliency_core.methods.incremental import IncrementalPlan

OOM = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def _fault(
    monkeypatch: pytest.MonkeyPatch, name: str, fails: Callable[[object, int], bool]
) -> list[tuple[int, bool]]:
    """Make RunContext.<name> (or, for "incremental", IncrementalPlan.outputs: incremental occlusion's
    batches) raise OOM when `fails(owner, batch)`; returns (batch, failed) per call."""
    owner, attr = (IncrementalPlan, "outputs") if name == "incremental" else (RunContext, name)
    original = getattr(owner, attr)
    calls: list[tuple[int, bool]] = []

    def faulty(self: object, xs: torch.Tensor, *args: object) -> torch.Tensor:
        failed = fails(self, len(xs))
        calls.append((len(xs), failed))
        if failed:
            raise OOM("CUDA out of memory. Tried to allocate 8.00 GiB (injected by the test)")
        return original(self, xs, *args)

    monkeypatch.setattr(owner, attr, faulty)
    return calls


@pytest.mark.parametrize(
    ("method", "kind", "params"),
    [
        ("integrated_gradients", "gradients", {"steps": 16}),
        ("smoothgrad", "gradients", {"samples": 16}),  # random noise: a retried batch draws the same
        ("rise", "scores", {"masks": 16, "cell": 16}),  # random masks, likewise
        ("occlusion", "scores", {"patch": 16, "stride": 16, "incremental": False}),
        ("occlusion", "incremental", {"patch": 16, "stride": 16}),
    ],
)
def test_a_batch_that_runs_out_of_memory_is_retried_smaller_with_the_same_result(
    monkeypatch, resnet, image, method, kind, params
) -> None:
    if kind == "incremental":  # at 64 px regions span whole maps and plain passes would take over
        image = torch.rand(1, 3, 112, 112, generator=torch.Generator().manual_seed(1))
    expected = sc.Engine(device="cpu").attribute(resnet, image, method, 3, batch_size=16, **params)
    engine = sc.Engine(device="cpu")
    calls = _fault(monkeypatch, kind, lambda ctx, batch: batch > 3)
    a = engine.attribute(resnet, image, method, 3, batch_size=16, **params)
    assert a.extras.get("incremental", False) is (kind == "incremental")
    # Incremental passes sum crops in an order that depends on the batch (2e-5 seen): float rounding.
    assert float((a.map - expected.map).norm() / expected.map.norm()) < 1e-4  # the bound
    failed = [batch for batch, bad in calls if bad]
    done = [batch for batch, bad in calls if not bad]
    assert failed and failed == sorted(failed, reverse=True) and min(failed) > 3  # halved until it fit
    assert max(done) <= 3
    assert any("ran out of memory on cpu" in note for note in a.notes), a.notes
    assert hook_count(resnet) == 0
    # The engine remembers: the next request starts at the size that fitted.
    calls.clear()
    engine.attribute(resnet, image, method, 4, batch_size=16, **params)
    assert calls and not any(bad for _, bad in calls)


def test_out_of_memory_one_image_at_a_time_on_an_accelerator_reruns_on_the_cpu(
    monkeypatch, resnet, image
) -> None:
    expected = sc.Engine(device="cpu").attribute(resnet, image, "integrated_gradients", 3, steps=8)
    engine = sc.Engine(device="cpu")
    model = engine.wrap(resnet)
    freed: list[str] = []
    monkeypatch.setattr(core, "has_cpu_fallback", lambda device: True)  # as if model.device were cuda
    monkeypatch.setattr(core, "free_memory", lambda device: freed.append(device.type))
    calls = _fault(monkeypatch, "gradients", lambda ctx, batch: ctx.model is model)
    a = engine.attribute(model, image, "integrated_gradients", 3, steps=8)
    assert torch.allclose(a.map, expected.map, rtol=1e-5, atol=1e-7)
    assert any(bad and batch == 1 for batch, bad in calls)  # it went down to one image first
    assert any(not bad for _, bad in calls)  # then the CPU copy did the work
    assert a.device == "cpu" and a.model_id == model.id
    assert any("computed on the CPU" in note for note in a.notes)
    assert freed  # the accelerator's cache was emptied
    assert hook_count(resnet) == 0
    # Cached under the original model: the next identical request is a hit with the same map.
    again = engine.attribute(model, image, "integrated_gradients", 3, steps=8)
    assert again.cached and torch.equal(again.map, a.map)


def test_out_of_memory_in_a_single_pass_moves_to_the_cpu_too(monkeypatch, resnet, image) -> None:
    expected = sc.Engine(device="cpu").attribute(resnet, image, "gradcam", 3, layer="layer4")
    engine = sc.Engine(device="cpu")
    model = engine.wrap(resnet)
    monkeypatch.setattr(core, "has_cpu_fallback", lambda device: True)
    original = RunContext._gradient_pass

    def faulty(self: RunContext, *args: object, **kwargs: object):
        if self.model is model:
            raise OOM("CUDA out of memory (injected)")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RunContext, "_gradient_pass", faulty)
    a = engine.attribute(model, image, "gradcam", 3, layer="layer4")
    assert torch.allclose(a.map, expected.map, rtol=1e-5, atol=1e-7)
    assert any("computed on the CPU" in note for note in a.notes)


def test_when_even_the_cpu_runs_out_the_error_is_a_clear_resource_limit(monkeypatch, resnet, image) -> None:
    engine = sc.Engine(device="cpu")
    monkeypatch.setattr(core, "has_cpu_fallback", lambda device: True)
    calls = _fault(monkeypatch, "gradients", lambda ctx, batch: True)
    with pytest.raises(sc.ResourceLimit, match="ran out of memory on cpu and then on the CPU") as info:
        engine.attribute(resnet, image, "integrated_gradients", 3, steps=8)
    assert info.value.__context__ is None and info.value.__cause__ is None  # no raw OOM traceback
    assert "smaller image" in str(info.value)
    assert calls and hook_count(resnet) == 0
    monkeypatch.undo()
    # The engine still works and cached nothing for the failed request.
    a = engine.attribute(resnet, image, "integrated_gradients", 3, steps=8)
    assert not a.cached
    expected = sc.Engine(device="cpu").attribute(resnet, image, "integrated_gradients", 3, steps=8)
    assert torch.allclose(a.map, expected.map, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(("kind", "incremental"), [("scores", False), ("incremental", True)])
def test_on_the_cpu_itself_out_of_memory_is_refused_without_a_fallback(
    monkeypatch, resnet, image, kind, incremental
) -> None:
    engine = sc.Engine(device="cpu")
    _fault(monkeypatch, kind, lambda ctx, batch: True)
    with pytest.raises(sc.ResourceLimit, match="ran out of memory on cpu, even one image at a time"):
        engine.attribute(resnet, image, "occlusion", 3, patch=32, stride=32, incremental=incremental)
    monkeypatch.undo()
    a = engine.attribute(resnet, image, "occlusion", 3, patch=32, stride=32, incremental=incremental)
    # (64 px: the first batch runs incrementally, then plain passes take over, see MAX_WORK_SHARE.) Plain: the failed run's reference pass is kept, only the 4 windows run. Incremental: the fault hit the
    # plan's own check window, so nothing was kept: the plan's 2 passes, the reference and the windows.
    assert a.forward_passes == (4 + 1 + 2 if incremental else 4)


def test_a_cpu_copy_has_the_same_weights_and_leaves_the_model_alone(resnet) -> None:
    from saliency_core.engine.loading import cpu_copy

    model = sc.Engine(device="cpu").wrap(resnet)
    copy = cpu_copy(model)
    assert copy.module is not resnet and copy.device.type == "cpu" and copy.task == model.task
    for (name, a), (_, b) in zip(resnet.state_dict().items(), copy.module.state_dict().items()):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr(), name
    assert not copy.module.training


def test_what_counts_as_out_of_memory() -> None:
    assert is_out_of_memory(OOM("CUDA out of memory"))
    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried ..."))
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_out_of_memory(ValueError("can't allocate memory"))


def test_free_memory_empties_the_cuda_cache(monkeypatch) -> None:
    emptied: list[bool] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    free_memory(torch.device("cpu"))
    assert emptied == []
    free_memory(torch.device("cuda"))
    assert emptied == [True]
