"""Time estimates: the speed model's fit on known timings, the probe before any pass, and every
classification method's estimate against its measured runs on the demo model."""

from __future__ import annotations

import statistics

import pytest
import torch

import saliency_core as sc
from saliency_core.engine.speed import SpeedTable, fit

# Shared 2-core machine: a factor that timing noise does not reach but a 5x error does.
TOLERANCE = 3.0
# Light settings (the file stays well under a minute), batched and unbatched methods alike.
LIGHT = {
    "smoothgrad": {"samples": 8},
    "integrated_gradients": {"steps": 8},
    "occlusion": {"patch": 56, "stride": 56},
    "rise": {"masks": 32},
}
HEAVIER = {
    "smoothgrad": {"samples": 24},
    "occlusion": {"patch": 32, "stride": 32},
    "rise": {"masks": 96},
    "scorecam": {"layer": "stage3"},
}


def test_a_batch_between_two_measured_sizes_is_fitted_as_overhead_plus_per_image() -> None:
    table = SpeedTable()
    key = ("m", (224, 224), "forward")
    table.record(key, 1, 9.0)  # cold: dropped once a warm batch of its size arrives
    for seconds in (0.30, 0.31, 0.29):
        table.record(key, 1, seconds)
    for seconds in (1.00, 1.02, 0.98):
        table.record(key, 8, seconds)
    # 0.3 s for one, 1.0 s for eight: 0.2 s per batch + 0.1 s per image.
    assert fit({1: 0.3, 8: 1.0}) == pytest.approx((0.2, 0.1))
    assert table.seconds(key, 4) == pytest.approx(0.6)
    assert table.seconds(key, 8) == pytest.approx(1.0)
    assert table.seconds(("m", (224, 224), "backward"), 4) is None


@pytest.fixture(scope="module")
def demo() -> tuple[sc.Engine, sc.LoadedModel, torch.Tensor]:
    engine = sc.Engine(device="cpu")
    info = next(m for m in sc.list_models() if m.id == "shapes_demo")
    model = engine.load_model("shapes_demo", weights="default" if info.weights_available else "random")
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    return engine, model, x


def test_before_any_pass_the_estimate_has_seconds_from_a_probe(demo) -> None:
    _, model, _ = demo
    fresh = sc.Engine(device="cpu")
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    est = fresh.estimate(model, "smoothgrad", LIGHT["smoothgrad"], x)
    assert est.seconds is not None and est.seconds > 0 and est.from_probe
    measured = fresh.attribute(model, x, "smoothgrad", use_cache=False, **LIGHT["smoothgrad"])
    # Rougher than after a run (one cold-ish pass under load), but not the 30x of a guess.
    assert measured.compute_seconds / 6 < est.seconds < measured.compute_seconds * 6


def _cases() -> list[tuple[str, dict]]:
    methods = [m.id for m in sc.list_methods(model=sc.Engine(device="cpu").load_model("shapes_demo"))]
    cases = [(m, LIGHT.get(m, {})) for m in methods]
    return cases + [(m, p) for m, p in HEAVIER.items() if m in methods]


@pytest.mark.parametrize(("method", "params"), _cases(), ids=lambda v: str(v))
def test_after_one_run_the_estimate_is_close_to_measured_runs(demo, method, params) -> None:
    engine, model, x = demo
    engine.attribute(model, x, method, use_cache=False, **params)  # warm-up: speeds measured
    times = [engine.attribute(model, x, method, use_cache=False, **params).compute_seconds for _ in range(3)]
    est = engine.estimate(model, method, params, x)
    measured = statistics.median(times)
    if est.forward_passes + est.backward_passes == 0:
        assert est.seconds == 0.0
        return
    assert est.seconds is not None
    if measured < 0.02 and est.seconds < 0.02:
        return  # both too short to compare: fixed costs and timer noise dominate
    ratio = est.seconds / measured
    assert 1 / TOLERANCE < ratio < TOLERANCE, f"estimate {est.seconds:.3f} s vs measured {measured:.3f} s"
