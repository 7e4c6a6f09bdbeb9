"""Occlusion's modes: exact (coarse windows first, previews while it refines, the same map as a window-by-
window loop) and adaptive (a coarse grid, drilled down where it changes); RISE's running previews."""

from __future__ import annotations

import pytest
import torch
from known_models import LinearPixels
from torch import nn

import saliency_core as sc
from saliency_core.methods.occlusion_grid import (
    coarse_step,
    coarse_to_fine,
    drill_down,
    interpolate_drops,
    sub_indices,
    window_starts,
)


@pytest.fixture
def engine() -> sc.Engine:
    return sc.Engine(device="cpu")


def _loop_occlusion(model: nn.Module, x: torch.Tensor, cls: int, patch: int, stride: int) -> torch.Tensor:
    """Occlusion written the slow obvious way: one window at a time, zero baseline."""
    _, _, h, w = x.shape
    with torch.no_grad():
        ref = model(x)[0, cls]
        total, count = torch.zeros(h, w), torch.zeros(h, w)
        for y in window_starts(h, patch, stride):
            for xx in window_starts(w, patch, stride):
                occluded = x.clone()
                occluded[..., y : y + patch, xx : xx + patch] = 0
                total[y : y + patch, xx : xx + patch] += ref - model(occluded)[0, cls]
                count[y : y + patch, xx : xx + patch] += 1
    return total / count.clamp(min=1)


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    ).eval()  # fmt: skip


def test_incremental_is_the_default_and_its_plan_serves_later_runs_on_the_same_image(
    engine: sc.Engine,
) -> None:
    model, x = _cnn(), torch.randn(1, 3, 32, 32)
    first = engine.attribute(model, x, "occlusion", 1, patch=8, stride=8)
    assert first.extras["incremental"] is True and first.forward_passes == 16 + 1 + 2
    # Another patch on the same image: the plan (and the reference) come from the engine's cache.
    second = engine.attribute(model, x, "occlusion", 1, patch=16, stride=8)
    assert second.extras["incremental"] is True and second.forward_passes == 9
    assert torch.allclose(second.map, _loop_occlusion(model, x, 1, 16, 8), atol=1e-5, rtol=1e-4)
    # Another image needs its own plan; so does a run that must not read the cache.
    assert engine.attribute(model, x + 1, "occlusion", 1, patch=16, stride=8).forward_passes == 9 + 1 + 2
    fresh = engine.attribute(model, x, "occlusion", 1, patch=16, stride=8, use_cache=False)
    assert fresh.forward_passes == 9 + 1 + 2
    # Changed weights change the model's key: the old plan (made from the old weights) is not used.
    with torch.no_grad():
        model[0].weight.mul_(2)
    changed = engine.attribute(model, x, "occlusion", 1, patch=16, stride=8)
    assert changed.forward_passes == 9 + 1 + 2
    assert torch.allclose(changed.map, _loop_occlusion(model, x, 1, 16, 8), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(("size", "patch", "stride"), [(40, 8, 2), (37, 10, 4), (30, 4, 6), (24, 24, 1)])
def test_exact_mode_is_the_window_by_window_map(
    engine: sc.Engine, size: int, patch: int, stride: int
) -> None:
    model, x = _cnn(), torch.randn(1, 3, size, size)
    previews: list[tuple[torch.Tensor, str]] = []
    a = engine.attribute(model, x, "occlusion", 2, patch=patch, stride=stride, batch_size=7, incremental=True,
                         preview=lambda m, label: previews.append((m, label)))  # fmt: skip
    expected = _loop_occlusion(model, x, 2, patch, stride)
    assert torch.allclose(a.map, expected, atol=1e-5, rtol=1e-4)
    n = len(window_starts(size, patch, stride)) ** 2
    # incremental: the unoccluded activations and the plan's check window are two more passes
    # (a patch as large as the image recomputes everything: after one batch, plain passes take over)
    assert a.extras["incremental"] is (patch < size) and a.extras["mode"] == "exact"
    assert a.forward_passes == n + 1 + 2
    plain = engine.attribute(
        model, x, "occlusion", 2, patch=patch, stride=stride, incremental=False, use_cache=False
    )
    assert torch.allclose(plain.map, expected, atol=1e-5, rtol=1e-4)
    assert plain.forward_passes == n + 1 and plain.extras["incremental"] is False
    side = len(window_starts(size, patch, stride))
    cells = [c for level, _ in coarse_to_fine(side, side, coarse_step(side, side)) for c in level]
    assert sorted(cells) == [(i, j) for i in range(side) for j in range(side)]  # each window once
    if n >= 16:  # a grid this size is thinned out: previews came, the first after at most 10% of windows
        assert previews, "no partial map was shown"
        first = int(previews[0][1].split(":")[1].split("of")[0])
        assert first <= 0.1 * n + 7  # one batch of slack
        assert all(p.shape == (size, size) for p, _ in previews)
    else:
        assert not previews


def _ramp_model(h: int, w: int) -> tuple[nn.Module, torch.Tensor]:
    """A linear model whose per-pixel weight is bilinear in the position: every window's drop is then
    bilinear in the window's position, so interpolating drops between windows is exact."""
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")  # fmt: skip
    weight = (1 + 0.5 * yy + 0.25 * xx)[None, None, None]  # [classes=1, C=1, H, W]
    return LinearPixels(weight), torch.ones(1, 1, h, w)


def test_previews_of_a_model_with_bilinear_drops_are_already_the_final_map(engine: sc.Engine) -> None:
    model, x = _ramp_model(36, 36)  # 36 - 4 = 32 = 16 strides of 2: no window hangs over the edge
    previews: list[torch.Tensor] = []
    a = engine.attribute(model, x, "occlusion", 0, patch=4, stride=2, batch_size=4,
                         preview=lambda m, _: previews.append(m))  # fmt: skip
    assert len(previews) >= 2
    for p in previews:
        assert torch.allclose(p, a.map, rtol=1e-4, atol=1e-3)


def test_adaptive_mode_is_exact_on_bilinear_drops_with_a_tenth_of_the_passes(engine: sc.Engine) -> None:
    model, x = _ramp_model(68, 68)  # 33 x 33 windows of 4 px every 2 px, none hanging over
    exact = engine.attribute(model, x, "occlusion", 0, patch=4, stride=2)
    fast = engine.attribute(
        model, x, "occlusion", 0, patch=4, stride=2, mode="adaptive", budget=0.1, use_cache=False
    )
    assert torch.allclose(fast.map, exact.map, rtol=1e-4, atol=1e-3)
    assert fast.extras["windows"] <= 0.1 * 33 * 33 + 1 and fast.extras["windows_total"] == 33 * 33
    assert fast.forward_passes == fast.extras["windows"] + 1 + 2 * fast.extras["incremental"]
    assert any("approximate" in note for note in fast.notes)


def test_adaptive_mode_drills_down_where_a_step_hides_between_coarse_windows(engine: sc.Engine) -> None:
    """A weight step the coarse grid only brackets: interpolation alone smears it, drilling down the
    changing cells recovers the exact map there."""
    h = w = 68
    weight = torch.ones(1, 1, 1, h, w)
    weight[..., 30:, :] = 5.0
    model, x = LinearPixels(weight), torch.ones(1, 1, h, w)
    exact = engine.attribute(model, x, "occlusion", 0, patch=8, stride=2)
    coarse_only = engine.attribute(model, x, "occlusion", 0, patch=8, stride=2, mode="adaptive", budget=0.05)
    drilled = engine.attribute(model, x, "occlusion", 0, patch=8, stride=2, mode="adaptive", budget=0.5)
    err = lambda a: float((a.map - exact.map).norm() / exact.map.norm())  # noqa: E731
    assert err(drilled) < 0.25 * err(coarse_only)
    assert drilled.extras["windows"] > coarse_only.extras["windows"]


def test_drill_down_takes_the_most_changing_cells_first() -> None:
    coarse = torch.zeros(9, 9)
    coarse[8, 8] = 1.0  # only the bottom-right cell (rows 4..8, cols 4..8) changes
    rows = cols = sub_indices(9, 4)  # [0, 4, 8]
    picked = drill_down(coarse, rows, cols, budget=21)
    assert set(picked) == {(i, j) for i in range(4, 9) for j in range(4, 9)} - {
        (4, 4),
        (4, 8),
        (8, 4),
        (8, 8),
    }
    assert drill_down(coarse, rows, cols, budget=20) == [] or len(drill_down(coarse, rows, cols, 20)) <= 20


def test_interpolated_drops_are_exact_at_the_known_windows_and_linear_between() -> None:
    drops = torch.zeros(5, 5)
    drops[0, 0], drops[0, 4], drops[4, 0], drops[4, 4] = 0.0, 4.0, 8.0, 12.0
    full = interpolate_drops(drops, [0, 4], [0, 4])
    assert full[0, 2] == pytest.approx(2.0) and full[2, 0] == pytest.approx(4.0)
    assert full[2, 2] == pytest.approx(6.0) and full[4, 4] == pytest.approx(12.0)


def test_coarse_step_keeps_the_first_map_within_a_tenth_of_the_windows() -> None:
    for n in (13, 27, 53, 105):
        step = coarse_step(n, n)
        assert len(sub_indices(n, step)) ** 2 <= 0.1 * n * n
        assert len(sub_indices(n, step // 2)) ** 2 > 0.1 * n * n  # and is not coarser than it needs to be
    assert coarse_step(2, 2) == 1


def test_rise_previews_refine_to_the_same_map(engine: sc.Engine) -> None:
    model, x = _cnn(), torch.randn(1, 3, 32, 32)
    previews: list[str] = []
    watched = engine.attribute(model, x, "rise", 1, masks=80, cell=8, batch_size=8, seed=3,
                               preview=lambda m, label: previews.append(label), use_cache=False)  # fmt: skip
    plain = engine.attribute(model, x, "rise", 1, masks=80, cell=8, batch_size=8, seed=3, use_cache=False)
    assert torch.allclose(watched.map, plain.map, atol=1e-6)
    shown = [int(label.split(" of ")[0]) for label in previews]  # after 10%, 25%, 50%, 75% of the masks
    assert len(shown) == 4 and 8 <= shown[0] <= 8 + 8 and shown == sorted(shown) and shown[-1] < 80


def test_a_running_job_shows_its_preview_and_drops_it_when_done(engine: sc.Engine) -> None:
    import threading

    gate = threading.Event()

    class Slow(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = _cnn()
            self.calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            if self.calls > 30:
                gate.wait(10)  # hold the job after its coarse windows, so the test sees a preview
            return self.net(x)

    model = engine.wrap(Slow())
    job = engine.submit(model, torch.randn(1, 3, 48, 48), "occlusion", 0, patch=8, stride=2, batch_size=4)
    for _ in range(200):
        if job.preview is not None:
            break
        job.wait(0.05)
    found = job.preview
    gate.set()
    assert found is not None and found[0].shape == (48, 48) and "refining" in found[1]
    job.result(30)
    assert job.preview is None


def test_work_share_is_the_recomputed_share_of_the_convolutions() -> None:
    from saliency_core.methods.incremental import plan

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 16 * 16, 2)).eval()
    x = torch.randn(1, 3, 16, 16)
    p = plan(model, x)
    assert not isinstance(p, str)
    p.outputs([(6, 6)], 4, torch.zeros_like(x))  # a 4 px patch reaches 6 x 6 outputs of a 3 x 3 conv
    assert p.work_share() == pytest.approx(36 / 256)
    p.outputs([(0, 0)], 4, torch.zeros_like(x))  # in the corner, 5 x 5
    assert p.work_share() == pytest.approx(25 / 256)


def test_small_images_switch_to_plain_passes_with_the_same_map(engine: sc.Engine) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 7, padding=3), nn.ReLU(), nn.Conv2d(8, 8, 7, padding=3), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2),
    ).eval()  # fmt: skip
    x = torch.randn(1, 3, 16, 16)  # an 8 px patch reaches 20 x 20 > the whole 16 x 16 map
    a = engine.attribute(model, x, "occlusion", 1, patch=8, stride=4, batch_size=2)
    assert a.extras["incremental"] is False and any("plain forward passes" in n for n in a.notes)
    assert torch.allclose(a.map, _loop_occlusion(model, x, 1, 8, 4), atol=1e-5, rtol=1e-4)
