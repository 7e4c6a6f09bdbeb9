"""Guided IG and Blur IG against PAIR saliency (`saliency.core.GuidedIG` / `BlurIG`), and their analytic
properties.

PAIR runs on the same torch model through a call_model_function (HWC numpy batches -> gradients of the
target logit, HWC), in the same tensor space as the engine: the models take the raw tensor, no
preprocessing on either side. Tolerances, relative L2 ||ours - theirs|| / ||theirs||:
- Guided IG, 1e-6: both walk the path in float64 and take the same float32 gradients at the same points
  (cast to float32 the same way); what is left is ours' final cast to float32 (measured 2.5e-8 to 4e-8).
- Blur IG, 1e-4 as shipped (float32 blur) and 2e-6 with the blur computed in float64 like PAIR's (then
  cast to the float32 model, as PAIR's HWC batch is). The operator equals scipy's to 1e-15 (tested below);
  in float32 the path points carry ~1e-7 relative rounding, which ResNet-18's gradients and the heavy
  cancellation of a 20-step sum amplify (measured 2e-7 on the CNN, 1.3e-5 on ResNet-18); with the float64
  blur the rest is float32 conv rounding (PAIR's own batch_size changes its map by 8e-7; measured <= 8e-7).
What the oracle needs here:
- PAIR 0.2.1 calls np.quantile(..., interpolation="lower"), a keyword NumPy 2.4 removed: its guided_ig
  module gets a numpy whose quantile passes it on as method=.
- The HWC batch permuted to CHW is made contiguous: channels-last strides pick other conv kernels whose
  float32 gradients differ in the last bits, and on ResNet-18 Guided IG's selection (a quantile of |grad|)
  turns that into another path (4% to 60% apart).
- PAIR's batched Blur IG weights a whole batch by its last step's sigma interval (equal intervals under
  linear spacing, so harmless there); ours weights each step by its own, so sqrt spacing is compared
  with PAIR's batch_size=1.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import saliency.core as pair
import torch
import torchvision
from known_models import LinearPixels, one_torch_thread
from saliency.core import guided_ig as pair_guided_ig
from scipy import ndimage
from task_models import ToyDetector, ToyPoseDetector, ToySegmenter, scene, toy_model
from torch import nn

import saliency_core as sc
from saliency_core.hooks import hook_count
from saliency_core.methods import pair_paths
from saliency_core.methods.pair_paths import blur_and_slope, blur_matrix, guided_ig_path

TARGET = 2
GUIDED = [dict(steps=40, fraction=0.25, max_dist=0.02), dict(steps=30, fraction=0.1, max_dist=0.5)]
BLUR = [dict(steps=20, max_sigma=10.0, grad_step=0.01, sqrt=False), dict(steps=20, max_sigma=50.0, sqrt=True)]


class _Numpy(types.ModuleType):
    """numpy, with the quantile keyword PAIR 0.2.1 still uses."""

    def __getattr__(self, name: str):
        return getattr(np, name)

    @staticmethod
    def quantile(a, q, interpolation: str = "linear", **kwargs):
        return np.quantile(a, q, method=interpolation, **kwargs)


@pytest.fixture(scope="module", autouse=True)
def oracle_setup():
    patch = pytest.MonkeyPatch()
    patch.setattr(pair_guided_ig, "np", _Numpy("numpy"))
    with one_torch_thread():
        yield
    patch.undo()


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 5),
    ).eval()


def _resnet() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=10).eval()


@pytest.fixture(scope="module", params=["cnn", "resnet18"])
def net(request) -> tuple[nn.Module, torch.Tensor]:
    model, size = (_cnn(), 32) if request.param == "cnn" else (_resnet(), 64)
    for p in model.parameters():
        p.requires_grad_(False)
    return model, torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))


def call_model_function(model: nn.Module, target: int):
    """PAIR's model interface: HWC batches in, d logit_target / d input out (HWC)."""

    def call(x_value_batch, call_model_args=None, expected_keys=None):
        assert expected_keys == [pair.INPUT_OUTPUT_GRADIENTS]
        t = torch.as_tensor(np.asarray(x_value_batch), dtype=torch.float32).permute(0, 3, 1, 2)
        t = t.contiguous().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(model(t)[:, target].sum(), [t])
        return {pair.INPUT_OUTPUT_GRADIENTS: grad.permute(0, 2, 3, 1).numpy()}

    return call


def hwc(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).double().numpy()


def rel_err(ours: torch.Tensor, theirs_hwc: np.ndarray) -> float:
    theirs = torch.as_tensor(theirs_hwc, dtype=torch.float64).permute(2, 0, 1)
    return float((ours.double() - theirs).norm() / theirs.norm())


# --- cross-checks against PAIR ---------------------------------------------------------------------
@pytest.mark.parametrize("params", GUIDED, ids=["default_dist", "wide_dist"])
def test_guided_ig_matches_pair(net, params) -> None:
    model, x = net
    image = hwc(x)
    theirs = pair.GuidedIG().GetMask(
        image,
        call_model_function(model, TARGET),
        x_baseline=np.zeros_like(image),
        x_steps=params["steps"],
        fraction=params["fraction"],
        max_dist=params["max_dist"],
    )
    a = sc.attribute(model, x, "guided_ig", TARGET, use_cache=False, baseline="zero", **params)
    assert a.raw.shape == x.shape[1:] and a.raw.dtype == torch.float32
    assert rel_err(a.raw, theirs) <= 1e-6
    assert torch.equal(a.map, a.raw.sum(0))


def _blur_in_float64(x: torch.Tensor, sigma: float, grad_step: float) -> tuple[torch.Tensor, torch.Tensor]:
    blurred, slope = blur_and_slope(x.double(), sigma, grad_step)
    return blurred.to(x.dtype), slope.to(x.dtype)


@pytest.mark.parametrize("blur, tolerance", [("float32", 1e-4), ("float64", 2e-6)])
@pytest.mark.parametrize("params", BLUR, ids=["linear", "sqrt"])
def test_blur_ig_matches_pair(net, params, blur, tolerance, monkeypatch) -> None:
    model, x = net
    if blur == "float64":
        monkeypatch.setattr(pair_paths, "blur_and_slope", _blur_in_float64)
    theirs = pair.BlurIG().GetMask(
        hwc(x),
        call_model_function(model, TARGET),
        max_sigma=params["max_sigma"],
        steps=params["steps"],
        grad_step=params.get("grad_step", 0.01),
        sqrt=params["sqrt"],
        batch_size=1 if params["sqrt"] else 8,
    )
    a = sc.attribute(model, x, "blur_ig", TARGET, use_cache=False, batch_size=7, **params)
    if params["sqrt"]:
        # The sqrt path's nearly unblurred first images put some of the random ResNet's ReLUs at zero,
        # where the BLAS's summation order decides the side: one machine gave 2.5e-4 in both precisions.
        tolerance = max(tolerance, 1e-3)
    assert rel_err(a.raw, theirs) <= tolerance


@pytest.mark.parametrize("sigma", [0.0, 0.01, 0.7, 3.3, 50.0])
def test_the_blur_is_scipys_constant_mode_filter(sigma) -> None:
    # Non-square, and at sigma 50 the kernel (radius 200) is far wider than the image.
    x = torch.randn(3, 20, 33, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    theirs = ndimage.gaussian_filter(x.permute(1, 2, 0).numpy(), sigma=[sigma, sigma, 0], mode="constant")
    blurred, slope = blur_and_slope(x, sigma, 0.01)
    assert np.abs(blurred.permute(1, 2, 0).numpy() - theirs).max() <= 1e-12 * max(1.0, np.abs(theirs).max())
    further = ndimage.gaussian_filter(
        x.permute(1, 2, 0).numpy(), sigma=[sigma + 0.01] * 2 + [0], mode="constant"
    )
    assert np.allclose(slope.permute(1, 2, 0).numpy(), (further - theirs) / 0.01, rtol=1e-9, atol=1e-9)
    inner = blur_matrix(401, sigma)[200]  # a row far from the edges holds the whole kernel: it sums to 1
    assert float(inner.sum()) == pytest.approx(1.0, abs=1e-12)


# --- Guided IG: the path ---------------------------------------------------------------------------
def test_guided_ig_path_keeps_its_schedule_and_band_and_ends_at_the_input() -> None:
    g = torch.Generator().manual_seed(5)
    x_in, x_b = torch.randn(2, 3, 6, 6, generator=g, dtype=torch.float64)
    x_b[0, 0, 0] = x_in[0, 0, 0]  # a feature with nowhere to go
    points: list[torch.Tensor] = []

    def grad_fn(point: torch.Tensor) -> torch.Tensor:
        points.append(point.clone())
        return torch.cos(3 * point) * (1 + point**2)  # a nonlinear, sign-changing gradient

    steps, max_dist = 10, 0.15
    attr, end = guided_ig_path(x_in, x_b, grad_fn, steps, fraction=0.2, max_dist=max_dist)
    # PAIR ends a step within 1e-9 (L1) of its target; the last target is the input itself.
    assert float((end - x_in).abs().sum()) <= 1e-9
    assert len(points) == steps and torch.equal(points[0], x_b)
    total = float((x_in - x_b).abs().sum())
    moving = x_in != x_b
    for k, point in enumerate(points):
        # Each step covers 1/steps of the L1 distance, and no feature leaves the band around alpha.
        assert float((point - x_in).abs().sum()) == pytest.approx(total * (1 - k / steps), rel=1e-9, abs=1e-9)
        alpha = ((point - x_b) / (x_in - x_b))[moving]
        assert alpha.min() >= max(k / steps - max_dist, 0) - 1e-12
        assert alpha.max() <= min(k / steps + max_dist, 1) + 1e-12
    assert attr[0, 0, 0] == 0


def test_guided_ig_moves_the_smallest_gradients_first() -> None:
    w = torch.tensor([3.0, -1.0, 4.0, 2.0], dtype=torch.float64).view(1, 4, 1, 1)
    points: list[torch.Tensor] = []

    def grad_fn(point: torch.Tensor) -> torch.Tensor:
        points.append(point.flatten().clone())
        return w.clone()

    ones = torch.ones_like(w)
    attr, _ = guided_ig_path(ones, torch.zeros_like(w), grad_fn, 4, fraction=0.25, max_dist=1.0)
    # One feature per step (a quarter of four), by |gradient|: 1, 2, 3, then 4.
    expected = [[0, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 1], [1, 1, 0, 1]]
    assert [p.tolist() for p in points] == expected
    assert torch.equal(attr, w)


@pytest.mark.parametrize("max_dist", [0.02, 1.0])
@pytest.mark.parametrize("baseline", ["zero", "uniform"])
def test_guided_ig_on_a_linear_model_is_exact(max_dist, baseline) -> None:
    # A constant gradient w: any path from x' to x gives w (x - x') exactly, and completeness holds.
    weight = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    model = LinearPixels(weight).eval()
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    a = sc.attribute(
        model, x, "guided_ig", 1, steps=16, max_dist=max_dist, baseline=baseline, use_cache=False
    )
    # The uniform baseline: seeded noise in [0, 1] (seed 0), taken as pixels (identity preprocessing).
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(0))
    start = torch.zeros_like(x) if baseline == "zero" else noise
    assert torch.allclose(a.raw, weight[1] * (x[0] - start[0]), rtol=1e-5, atol=1e-6)
    assert abs(a.extras["completeness_delta"]) <= 1e-4 * max(1.0, abs(a.extras["score_difference"]))
    assert a.extras["path_end_distance"] <= 1e-9


def test_guided_ig_without_deviation_is_left_riemann_integrated_gradients() -> None:
    # max_dist 0: every step lands on the straight line at alpha = k / steps, gradient taken at its start.
    model, x = _cnn(), torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    g = sc.attribute(model, x, "guided_ig", TARGET, steps=10, max_dist=0.0, use_cache=False)
    ig = sc.attribute(
        model, x, "integrated_gradients", TARGET, steps=10, rule="riemann_left", use_cache=False
    )
    # float32 points: ours cast from float64, IG's computed in float32 (an ulp apart).
    assert float((g.raw - ig.raw).norm() / ig.raw.norm()) <= 1e-5


def test_guided_ig_reports_each_step_and_can_be_cancelled() -> None:
    model, x = _cnn(), torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    calls = []
    handle = model.register_forward_hook(lambda *_: calls.append(1))
    reports: list[float] = []
    try:
        with pytest.raises(sc.Cancelled):
            sc.attribute(
                model,
                x,
                "guided_ig",
                TARGET,
                steps=50,
                use_cache=False,
                progress=lambda fraction, _msg: reports.append(fraction),
                cancel=lambda: len(reports) >= 5,
            )
    finally:
        handle.remove()
    assert reports[:5] == [0.0, 0.02, 0.04, 0.06, 0.08]
    assert len(calls) <= 6  # stopped after a few steps, not 50
    assert hook_count(model) == 0


# --- Blur IG ---------------------------------------------------------------------------------------
def test_blur_ig_on_a_linear_model_is_ig_from_the_blurred_image() -> None:
    # A constant gradient w: the blur path integrates to w (x - L(x, max_sigma)), up to the left Riemann
    # sum over sigma and the finite difference, both first order in their steps (0.04 and 0.01 here;
    # measured 8e-5 of the map, completeness 4e-4 of the score difference).
    weight = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    model = LinearPixels(weight).eval()
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    blurred = blur_and_slope(x[0].double(), 8.0, 0.01)[0]
    expected = weight[1].double() * (x[0].double() - blurred)

    def error(steps: int) -> tuple[float, sc.Attribution]:
        a = sc.attribute(model, x, "blur_ig", 1, steps=steps, max_sigma=8.0, use_cache=False)
        return float((a.raw.double() - expected).norm() / expected.norm()), a

    coarse, _ = error(50)
    fine, a = error(200)
    assert fine <= 1e-3 and fine < coarse / 10  # converges as the steps shrink
    assert a.extras["score_difference"] == pytest.approx(float(expected.sum()), rel=1e-5)
    assert abs(a.extras["completeness_delta"]) <= 2e-3 * abs(a.extras["score_difference"])


def test_blur_ig_does_not_depend_on_the_batch_size() -> None:
    model, x = _cnn(), torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    one = sc.attribute(model, x, "blur_ig", TARGET, steps=12, sqrt=True, batch_size=1, use_cache=False)
    five = sc.attribute(model, x, "blur_ig", TARGET, steps=12, sqrt=True, batch_size=5, use_cache=False)
    assert torch.allclose(one.raw, five.raw, rtol=1e-5, atol=1e-7)
    assert one.extras["max_sigma_reached"] == pytest.approx(50.0**0.5)


# --- engine: passes and tasks ----------------------------------------------------------------------
@pytest.mark.parametrize("method, params", [("guided_ig", {"steps": 7}), ("blur_ig", {"steps": 9})])
def test_passes_are_counted_as_estimated(method, params) -> None:
    model, x = _cnn(), torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    a = sc.Engine(device="cpu").attribute(model, x, method, TARGET, **params)
    assert (a.forward_passes, a.backward_passes) == (params["steps"] + 2, params["steps"])


SIZE, BOX, DECOY = 96, (32, 24, 80, 72), (0, 0, 20, 20)


@pytest.mark.parametrize("task", ["detection", "keypoints", "segmentation", "salient_object"])
def test_both_explain_every_task_toy_inside_the_only_region_it_sees(task) -> None:
    engine = sc.Engine(device="cpu")
    module, labels, target = {
        "detection": (ToyDetector(BOX, DECOY), ("bg", "thing", "decoy"), sc.BoxTarget((33, 25, 79, 70), 1)),
        "keypoints": (
            ToyPoseDetector(BOX),
            ("no person", "person"),
            sc.KeypointTarget((33, 25, 79, 70), "left_wrist"),
        ),
        "segmentation": (ToySegmenter(BOX), ("bg", "thing", "other"), sc.ClassTarget(1)),
        "salient_object": (ToySegmenter(BOX, channels=1), ("salient",), sc.MaskTarget()),
    }[task]
    model = toy_model(engine, module, task, labels)
    image = scene(SIZE, BOX)
    x0, y0, x1, y1 = BOX
    for method, params in (("guided_ig", {"steps": 12}), ("blur_ig", {"steps": 12, "max_sigma": 20.0})):
        assert method in {m.id for m in sc.list_methods(model=model)}
        a = engine.attribute(model, image, method, target, **params)
        mass = a.map.abs()
        assert torch.isfinite(mass).all() and mass.sum() > 0, method
        assert float(mass[y0:y1, x0:x1].sum() / mass.sum()) >= 0.999, method  # the gradient is 0 outside
        assert a.extras["score_difference"] != 0, method
    assert hook_count(model.module) == 0
