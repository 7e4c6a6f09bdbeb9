"""Forward-only work in inference mode, and maps computed on the model's device.

- Outputs cached by a forward-only pass (inference mode) are reused by gradient methods afterwards: the
  maps equal a fresh engine's and the reuse costs no pass.
- A method's compute moves nothing to the CPU (no .cpu(), .numpy() or .to("cpu")): upsampling and
  normalisation stay on the device, and the engine makes the one copy to the CPU at the end. Counted with
  a monkeypatch, so it holds on this CPU-only machine too.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from task_models import ToySegmenter, scene, toy_model

import saliency_core as sc
import saliency_core.engine.core as engine_core
from saliency_core.methods.common import shifted_upsample
from saliency_core.methods.perturbation import rise_masks


@functools.cache
def _demo() -> tuple[sc.LoadedModel, torch.Tensor, int]:
    model = sc.load_model("shapes_demo")
    sample = next(s for s in sc.list_samples() if s.kind == "synthetic" and s.suggested_model == model.id)
    x = F.interpolate(model.preprocess(sample.image()), size=(112, 112), mode="bilinear", antialias=True)
    return model, x, model.categories.index(sample.label)


def test_forward_only_first_then_gradient_methods_reuse_the_cache_and_match() -> None:
    _, x, label = _demo()
    engine = sc.Engine(device="cpu")
    demo = engine.load_model("shapes_demo")
    # Occlusion first: its reference output is cached by a forward-only (inference-mode) pass.
    engine.attribute(demo, x, "occlusion", label, patch=28, stride=28)
    output, computed = engine.forward_cached(demo, x)
    assert not computed and not torch.is_inference(output)
    grad = engine.attribute(demo, x, "gradient", label)
    cam = engine.attribute(demo, x, "gradcam", label)
    assert cam.forward_passes == cam.backward_passes == 0  # the gradient pass kept the CAM layer
    eigen = engine.attribute(demo, x, "eigencam")
    fresh = sc.Engine(device="cpu")
    again = fresh.load_model("shapes_demo")
    for result in (grad, cam, eigen):
        alone = fresh.attribute(again, x, result.method, label if result.method != "eigencam" else None)
        assert torch.allclose(result.map, alone.map, rtol=1e-5, atol=1e-7), result.method


def test_a_target_bound_to_an_inference_mode_output_enters_a_gradient_pass() -> None:
    # The default salient-object target is the predicted mask of the cached (inference-mode) output.
    size, box = 64, (16, 16, 48, 48)
    engine = sc.Engine(device="cpu")
    model = toy_model(engine, ToySegmenter(box, channels=1), "salient_object", ("salient",))
    x = scene(size, box)
    engine.attribute(model, x, "occlusion", sc.MaskTarget(), patch=16, stride=16)
    saliency = engine.attribute(model, x, "gradient", sc.MaskTarget()).map
    x0, y0, x1, y1 = box
    inside = saliency[y0:y1, x0:x1].abs().sum()
    assert inside > 0.99 * saliency.abs().sum()


@contextmanager
def counting_host_copies(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[str]]]:
    """Count .cpu(), .numpy() and .to("cpu") per method while its compute runs (not the engine's own
    final copy, nor the input's hash)."""
    counts: dict[str, list[str]] = {}
    active: list[str] = []
    original_get = engine_core.get_method

    def get_method(method: str) -> Any:
        spec = original_get(method)

        def compute(ctx: Any) -> Any:
            active.append(method)
            try:
                return spec.compute(ctx)
            finally:
                active.pop()

        return dataclasses.replace(spec, compute=compute)

    def counted(name: str, original: Any) -> Any:
        def wrapper(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            # .to(x.device) is device-neutral code (a no-op on the CPU here); only an explicit "cpu" counts.
            to_cpu = name != "to" or "cpu" in (*args, kwargs.get("device"))
            if active and to_cpu:
                counts.setdefault(active[-1], []).append(name)
            return original(self, *args, **kwargs)

        return wrapper

    monkeypatch.setattr(engine_core, "get_method", get_method)
    for name in ("cpu", "numpy", "to"):
        monkeypatch.setattr(torch.Tensor, name, counted(name, getattr(torch.Tensor, name)))
    yield counts


DEVICE_SIDE = {
    "gradient": {},
    "smoothgrad": {"samples": 4},
    "integrated_gradients": {"steps": 4},
    "gradcam": {},
    "gradcam_pp": {},
    "layercam": {},
    "eigencam": {},
    "scorecam": {"layer": "stage2"},
    "occlusion": {"patch": 28, "stride": 28},
    "rise": {"masks": 8, "cell": 28},
}


def test_methods_compute_on_the_device_and_copy_to_the_cpu_once(monkeypatch: pytest.MonkeyPatch) -> None:
    _, x, label = _demo()
    engine = sc.Engine(device="cpu")
    demo = engine.load_model("shapes_demo")
    with counting_host_copies(monkeypatch) as counts:
        for method, params in DEVICE_SIDE.items():
            engine.attribute(demo, x, method, label, use_cache=False, **params)
        # The premise: a host copy inside a method is counted.
        engine.attribute(demo, x, "edges_sobel", use_cache=False)
    assert counts.pop("edges_sobel")  # model-free OpenCV references work on the picture, by design
    assert counts == {}


def test_shifted_upsample_equals_rise_masks_made_one_by_one() -> None:
    # The same draws as perturbation.rise_masks (a grid, then its shift, per mask), upsampled in one batch.
    count, size, cell, p = 12, (40, 52), 8, 0.5
    expected = rise_masks(count, size, cell, p, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    gh, gw = math.ceil(size[0] / cell) + 1, math.ceil(size[1] / cell) + 1
    grids, shifts = [], []
    for _ in range(count):
        grids.append((torch.rand(gh, gw, generator=g) < p).float())
        shifts.append(torch.randint(0, cell, (2,), generator=g))
    masks = shifted_upsample(torch.stack(grids), torch.stack(shifts), size, cell)
    assert masks.shape == (count, *size)
    assert torch.allclose(masks, expected, atol=1e-6)
    assert not torch.equal(masks[0], masks[1])  # the premise: masks differ, so a wrong crop shows
