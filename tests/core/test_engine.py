"""The shared engine: no leftover hooks, untouched models, thread safety, shared needs, caching, cancel."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from known_models import TinyCam

import saliency_core as sc
from saliency_core.hooks import hook_count
from saliency_core.methods import get_method

FAST_PARAMS = {
    "smoothgrad": {"samples": 3},
    "integrated_gradients": {"steps": 4},
    "occlusion": {"patch": 32, "stride": 32},
    "rise": {"masks": 6, "cell": 16},
    "gradient_shap": {"samples": 4},
    "deeplift_shap": {"baselines": 2},
    "guided_ig": {"steps": 8},
    "blur_ig": {"steps": 8},
    "ablation_cam": {"layer": "layer1"},
    "lime": {"samples": 16, "segments": 8},
    "kernel_shap": {"samples": 16, "segments": 8},
    "feature_ablation": {"segments": 8},
    "xrai": {"steps": 4},
}


def _all_methods() -> list[str]:
    return [m.id for m in sc.list_methods()]


def _network(method: str, resnet: torch.nn.Module, vit: torch.nn.Module) -> torch.nn.Module:
    """The ResNet-18, or the small ViT for the methods that say they cannot explain a CNN."""
    for network in (resnet, vit):
        if not get_method(method).unsupported(sc.Engine(device="cpu").resolve(network)):
            return network
    raise AssertionError(f"{method} explains neither the ResNet nor the ViT")


def _snapshot(module: torch.nn.Module) -> dict:
    return {
        "state": {k: v.clone() for k, v in module.state_dict().items()},
        "requires_grad": [p.requires_grad for p in module.parameters()],
        "training": [m.training for m in module.modules()],
        "grads": [p.grad for p in module.parameters()],
        "hooks": hook_count(module),
    }


def _assert_unchanged(module: torch.nn.Module, before: dict) -> None:
    after = _snapshot(module)
    assert after["hooks"] == before["hooks"] == 0
    assert after["requires_grad"] == before["requires_grad"]
    assert after["training"] == before["training"]
    assert all(g is None for g in after["grads"]), "a method wrote param.grad"
    for key, value in before["state"].items():
        assert torch.equal(after["state"][key], value), f"{key} changed"


@pytest.mark.parametrize("method", _all_methods())
def test_every_method_leaves_no_hook_and_an_unchanged_model(resnet, vit, image, method) -> None:
    engine = sc.Engine(device="cpu")
    network = _network(method, resnet, vit)
    before = _snapshot(network)
    a = engine.attribute(network, image, method, 3, **FAST_PARAMS.get(method, {}))
    assert a.map.shape == (64, 64) and a.map.dtype == torch.float32 and a.map.device.type == "cpu"
    assert torch.isfinite(a.map).all()
    _assert_unchanged(network, before)


class Boom(RuntimeError):
    pass


def test_no_hook_left_after_a_failing_run(resnet, image) -> None:
    engine = sc.Engine(device="cpu")
    before = _snapshot(resnet)

    def exploding_target(output: torch.Tensor) -> torch.Tensor:
        raise Boom("target failed")

    class BadTarget(sc.ClassTarget):
        def __call__(self, output):  # type: ignore[override]
            return exploding_target(output)

    for method in ("gradcam", "guided_backprop", "integrated_gradients", "scorecam", "eigencam"):
        with pytest.raises((Boom, sc.InvalidParameter)):
            if method == "eigencam":
                engine.attribute(resnet, image, method, layer="no.such.layer")
            else:
                engine.attribute(resnet, image, method, BadTarget(3), **FAST_PARAMS.get(method, {}))
        _assert_unchanged(resnet, before)


def test_cancel_stops_a_long_method_and_the_engine_keeps_working(resnet, image) -> None:
    engine = sc.Engine(device="cpu")
    before = _snapshot(resnet)
    calls = []

    def progress(fraction: float, message: str) -> None:
        calls.append(fraction)

    with pytest.raises(sc.Cancelled):
        engine.attribute(
            resnet,
            image,
            "occlusion",
            3,
            patch=8,
            stride=4,
            batch_size=4,
            progress=progress,
            cancel=lambda: len(calls) >= 3,
        )
    _assert_unchanged(resnet, before)
    assert len(calls) == 3  # stopped at the first check after the third report, not at the end
    event = threading.Event()
    event.set()
    with pytest.raises(sc.Cancelled):
        engine.attribute(resnet, image, "rise", 3, masks=50, cancel=event)
    a = engine.attribute(resnet, image, "occlusion", 3, patch=32, stride=32)
    assert a.forward_passes == 4  # the 4 windows; the unoccluded score survived the cancelled run


def test_progress_reports_rise_to_one(resnet, image) -> None:
    seen: list[float] = []
    sc.Engine(device="cpu").attribute(
        resnet, image, "integrated_gradients", 3, steps=10, batch_size=3, progress=lambda f, m: seen.append(f)
    )
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert seen == sorted(seen) and len(seen) == 1 + 4


def test_switching_gradient_cam_variants_makes_no_model_pass(resnet, image) -> None:
    engine = sc.Engine(device="cpu")
    first = engine.attribute(resnet, image, "gradcam", 3, layer="layer3")
    assert (first.forward_passes, first.backward_passes) == (1, 1)
    for method in ("gradcam_pp", "xgradcam", "hirescam", "layercam"):
        a = engine.attribute(resnet, image, method, 3, layer="layer3")
        assert (a.forward_passes, a.backward_passes) == (0, 0), method
        assert not a.cached  # computed from shared needs, not a stored result
    # Eigen-CAM reuses the activations captured by the gradient pass
    assert engine.attribute(resnet, image, "eigencam", layer="layer3").forward_passes == 0
    again = engine.attribute(resnet, image, "gradcam", 3, layer="layer3")
    assert again.cached and torch.equal(again.map, first.map)
    other_target = engine.attribute(resnet, image, "gradcam", 4, layer="layer3")
    assert other_target.backward_passes == 1 and not torch.equal(other_target.map, first.map)
    fresh = engine.attribute(resnet, image, "gradcam", 3, layer="layer3", use_cache=False)
    assert (fresh.forward_passes, fresh.backward_passes) == (1, 1) and torch.equal(fresh.map, first.map)


def test_a_pass_to_the_input_keeps_every_candidate_layer() -> None:
    engine = sc.Engine(device="cpu")
    model = engine.load_model("resnet18", weights=None)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    grad = engine.attribute(model, x, "gradient", 3)
    assert (grad.forward_passes, grad.backward_passes) == (1, 1)
    assert engine.attribute(model, x, "gradient_x_input", 3).forward_passes == 0
    for layer in model.layers():
        for method in ("gradcam", "layercam"):
            a = engine.attribute(model, x, method, 3, layer=layer)
            assert (a.forward_passes, a.backward_passes) == (0, 0), (method, layer)
    alone = sc.Engine(device="cpu").attribute(model, x, "gradcam", 3, layer="layer2")
    assert torch.equal(alone.map, engine.attribute(model, x, "gradcam", 3, layer="layer2").map)


def test_results_do_not_depend_on_the_batch_size(resnet, image) -> None:
    engine = sc.Engine(device="cpu")
    a = engine.attribute(resnet, image, "integrated_gradients", 3, steps=6, batch_size=1)
    b = engine.attribute(resnet, image, "integrated_gradients", 3, steps=6, batch_size=6, use_cache=False)
    assert torch.allclose(a.map, b.map, rtol=1e-4, atol=1e-6)


def test_eight_threads_on_one_shared_model_give_the_serial_results(resnet, image) -> None:
    jobs = [
        ("gradcam", 1, {"layer": "layer4"}),
        ("gradcam_pp", 2, {"layer": "layer3"}),
        ("integrated_gradients", 3, {"steps": 4}),
        ("gradient", 4, {}),
        ("guided_backprop", 5, {}),
        ("occlusion", 6, {"patch": 32, "stride": 32}),
        ("smoothgrad", 7, {"samples": 3}),
        ("scorecam", 8, {"layer": "layer4"}),
    ]
    serial = [sc.Engine(device="cpu").attribute(resnet, image, m, c, **p).map for m, c, p in jobs]
    shared = sc.Engine(device="cpu")
    barrier = threading.Barrier(len(jobs))

    def run(job: tuple) -> torch.Tensor:
        method, cls, params = job
        barrier.wait()
        return shared.attribute(resnet, image, method, cls, **params).map

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        parallel = list(pool.map(run, jobs))
    for (method, _, _), s, p in zip(jobs, serial, parallel):
        assert torch.allclose(s, p, rtol=1e-5, atol=1e-7), method
    assert hook_count(resnet) == 0


@pytest.mark.parametrize("method", _all_methods())
def test_estimate_matches_the_passes_made(resnet, vit, image, method) -> None:
    engine = sc.Engine(device="cpu")
    network = _network(method, resnet, vit)
    params = dict(FAST_PARAMS.get(method, {}))
    if method == "scorecam":
        params["layer"] = "layer4"
    estimate = engine.estimate(network, method, params, x=image)
    # A fresh engine: the estimate's speed probe cached the input's output, which saves a run one pass.
    a = sc.Engine(device="cpu").attribute(network, image, method, 3, **params)
    assert (estimate.forward_passes, estimate.backward_passes) == (a.forward_passes, a.backward_passes)


def test_estimate_gives_seconds_from_a_probe_then_from_runs(resnet, image) -> None:
    engine = sc.Engine(device="cpu")
    probed = engine.estimate(resnet, "occlusion", {"patch": 16, "stride": 16}, x=image)
    assert probed.seconds is not None and probed.seconds > 0 and probed.from_probe
    # Plain passes: incremental batches recompute regions, so they do not measure a whole forward
    engine.attribute(resnet, image, "occlusion", 3, patch=32, stride=32, incremental=False)
    est = engine.estimate(resnet, "occlusion", {"patch": 16, "stride": 16}, x=image)
    # 16 windows, the unoccluded reference and the incremental plan's two passes: an estimate counts
    # needs as if nothing were cached (an upper bound; the run reuses both here)
    assert est.forward_passes == 16 + 1 + 2 and est.seconds is not None and est.seconds > 0
    assert not est.from_probe  # the run's batches measured the forward


def test_result_cache_respects_its_byte_budget(image) -> None:
    model = TinyCam(torch.eye(3)).eval()
    one_map = 64 * 64 * 4
    engine = sc.Engine(device="cpu", cache_bytes=one_map * 5)  # room for two results (map + raw each)
    for cls in range(3):
        engine.attribute(model, image, "occlusion", cls, patch=32, stride=32)
    stats = engine.cache.stats()
    assert stats.bytes <= stats.max_bytes
    assert stats.evictions > 0
    first = engine.attribute(model, image, "occlusion", 0, patch=32, stride=32)
    assert not first.cached  # evicted: recomputed


def test_changing_the_weights_invalidates_cached_results(image) -> None:
    model = TinyCam(torch.eye(3)).eval()
    engine = sc.Engine(device="cpu")
    a = engine.attribute(model, image, "gradcam", 0, layer="features")
    with torch.no_grad():
        model.fc.weight.mul_(2)
    b = engine.attribute(model, image, "gradcam", 0, layer="features")
    assert not b.cached and torch.allclose(b.map, 2 * a.map)


def test_bad_requests_have_clear_messages(resnet, image) -> None:
    engine = sc.Engine(device="cpu")
    with pytest.raises(sc.UnknownMethod, match="Known methods"):
        engine.attribute(resnet, image, "gradcamm", 3)
    with pytest.raises(sc.InvalidParameter, match="no layer named 'layer9'"):
        engine.attribute(resnet, image, "gradcam", 3, layer="layer9")
    with pytest.raises(sc.InvalidParameter, match="has no parameter steps"):
        engine.attribute(resnet, image, "gradient", 3, steps=4)
    with pytest.raises(sc.InvalidParameter, match="at least 2"):
        engine.attribute(resnet, image, "integrated_gradients", 3, steps=1)
    with pytest.raises(sc.InvalidParameter, match="out of range"):
        engine.attribute(resnet, image, "gradient", 99)
    with pytest.raises(sc.InvalidParameter, match="one image at a time"):
        engine.attribute(resnet, torch.rand(2, 3, 64, 64), "gradient", 3)
    with pytest.raises(sc.InvalidParameter, match="larger than the image"):
        engine.attribute(resnet, image, "occlusion", 3, patch=100)
    with pytest.raises(sc.InvalidParameter, match="CAM needs the layer"):
        engine.attribute(resnet, image, "cam", 3, layer="layer3")


def test_default_target_is_the_top_prediction(resnet, image) -> None:
    engine = sc.Engine(device="cpu")
    top = int(resnet(image).argmax())
    a = engine.attribute(resnet, image, "gradient")
    assert a.target.index == top
    b = engine.attribute(resnet, image, "gradient", top)
    assert torch.equal(a.map, b.map)


def test_device_selection(monkeypatch) -> None:
    from saliency_core.device import pick_device

    monkeypatch.setenv("SALIENCY_DEVICE", "cpu")
    assert pick_device().type == "cpu"
    assert sc.Engine().device.type == "cpu"
    monkeypatch.delenv("SALIENCY_DEVICE")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if (
        not torch.cuda.is_available()
        and getattr(torch.backends, "mps", None)
        and torch.backends.mps.is_available()
    ):
        expected = "mps"
    assert pick_device().type == expected
    if not torch.cuda.is_available():
        with pytest.raises(sc.InvalidParameter, match="CUDA is not available"):
            pick_device("cuda")
    assert pick_device("cpu").type == "cpu"


def test_cache_budget_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("SALIENCY_CACHE_MB", "3")
    assert sc.Engine(device="cpu").cache.max_bytes == 3 * 1024 * 1024
    monkeypatch.setenv("SALIENCY_CACHE_MB", "lots")
    with pytest.raises(sc.InvalidParameter, match="megabytes"):
        sc.Engine(device="cpu")


def test_a_detection_model_refuses_a_class_index_with_a_clear_message() -> None:
    engine = sc.Engine(device="cpu")
    model = engine.load_model("ssdlite320_mobilenet_v3_large", weights=None)
    x = torch.rand(1, 3, 320, 320)
    with pytest.raises(sc.InvalidParameter, match="detection model explains a BoxTarget"):
        engine.attribute(model, x, "gradient", 3)


def test_wrapping_a_plain_module_with_another_task() -> None:
    from known_models import TinyCam

    module = TinyCam(torch.eye(3)).eval()
    engine = sc.Engine(device="cpu")
    assert engine.wrap(module).task == "classification"
    assert engine.wrap(module, task="segmentation").task == "segmentation"


def test_speed_estimates_drop_the_cold_first_pass() -> None:
    engine = sc.Engine(device="cpu")
    model = engine.wrap(TinyCam(torch.eye(3)).eval())
    x = torch.zeros(1, 3, 32, 32)
    engine.record_speed(model, "forward", 10.0, 1, x.shape)  # the first pass: lazy initialisation
    assert engine.pass_seconds(model, x, "forward", 1)[0] == 10.0  # all there is, for now
    for seconds in (1.0, 1.2, 0.8):
        engine.record_speed(model, "forward", seconds, 1, x.shape)
    assert engine.pass_seconds(model, x, "forward", 1)[0] == pytest.approx(1.0)


def test_changing_a_returned_map_in_place_does_not_change_the_cache(resnet, image) -> None:
    engine = sc.Engine(device="cpu")
    first = engine.attribute(resnet, image, "gradcam", 3, layer="layer4")
    kept = first.map.clone()
    first.map.mul_(-7)
    first.raw.zero_()
    first.params["layer"] = "elsewhere"
    again = engine.attribute(resnet, image, "gradcam", 3, layer="layer4")
    assert again.cached and torch.equal(again.map, kept) and again.params["layer"] == "layer4"
    again.map.zero_()  # a hit is the caller's own too
    assert torch.equal(engine.attribute(resnet, image, "gradcam", 3, layer="layer4").map, kept)


def test_changing_a_returned_raw_gradient_does_not_change_the_shared_need(resnet, image) -> None:
    engine = sc.Engine(device="cpu")
    engine.attribute(resnet, image, "gradient", 3).raw.fill_(1e6)  # raw is the input gradient itself
    shared = engine.attribute(resnet, image, "gradient_x_input", 3)
    assert shared.forward_passes == 0  # served by the need the first call cached
    alone = sc.Engine(device="cpu").attribute(resnet, image, "gradient_x_input", 3)
    assert torch.equal(shared.map, alone.map)


def test_changing_a_forward_output_does_not_change_the_cache(resnet, image) -> None:
    engine = sc.Engine(device="cpu")
    out = engine.forward(resnet, image)
    kept = out.clone()
    out.zero_()
    assert torch.equal(engine.forward(resnet, image), kept) and engine.forward_count == 1


def test_use_cache_false_neither_reads_nor_writes_the_cache(resnet, image) -> None:
    engine = sc.Engine(device="cpu")
    for method, params in (
        ("gradcam", {"layer": "layer4"}),
        ("gradient", {}),
        ("occlusion", FAST_PARAMS["occlusion"]),
    ):
        a = engine.attribute(resnet, image, method, 3, use_cache=False, **params)
        assert not a.cached and a.forward_passes >= 1
    assert engine.cache.stats().entries == 0 and engine.cache.stats().bytes == 0
    cached = engine.attribute(resnet, image, "gradcam", 3, layer="layer4")
    entries = engine.cache.stats().entries
    fresh = engine.attribute(resnet, image, "gradcam", 3, layer="layer4", use_cache=False)
    assert (fresh.forward_passes, fresh.backward_passes) == (1, 1) and not fresh.cached
    assert torch.equal(fresh.map, cached.map) and engine.cache.stats().entries == entries
