"""LIME, Kernel SHAP and feature ablation over superpixels (the region family).

Cross-checks against captum's `Lime`, `KernelShap` and `FeatureAblation` on a seeded random-init CNN, with
the same feature mask (our segments), the same on/off samples in the same order (a perturb_func replaying
them), captum's own kernels, compositing and forward calls, and its sklearn surrogates (Ridge,
LinearRegression). Tolerances: feature ablation is the same images' scores subtracted, but a segment moves
the random CNN's logit by ~1e-4 while float32 logits batched differently (ours in batches, captum's one
by one) differ by ~1e-7 of their size: rel. L2 <= 1e-4.
LIME and Kernel SHAP: captum hands sklearn float32 samples, scores and weights (Kernel SHAP's end points
weigh 1e6 against 1) while ours fit in float64: rel. L2 <= 1e-4 (measured: LIME 5e-7, Kernel SHAP 1.1e-6;
feature ablation 2e-6 with the zero baseline, 1.1e-5 with blur).

Known answers: a model linear in its pixels (feature ablation of a segment = sum of w (x - b) over it;
Kernel SHAP recovers those Shapley values exactly from enough samples), a model that sees one rectangle
(LIME's mass is there), and the task toys of tests/core/task_models.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum._utils.models.linear_model import SkLearnLinearRegression, SkLearnRidge
from captum.attr import FeatureAblation, KernelShap, Lime
from captum.attr._core.lime import get_exp_kernel_similarity_function
from known_models import LinearPixels, RegionMean, one_torch_thread
from task_models import ToyDetector, ToyPoseDetector, ToySegmenter, scene, toy_model
from torch import nn

import saliency_core as sc
from saliency_core.hooks import hook_count
from saliency_core.methods import segments as seg
from saliency_core.methods import superpixel as sp
from saliency_core.methods.perturbation import occlusion_baseline

SIZE = 48
CAPTUM_TOL = 1e-4
ABLATION_TOL = 1e-4


def rel_err(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    ours, theirs = ours.detach().double().flatten(), theirs.detach().double().flatten()
    return float((ours - theirs).norm() / theirs.norm())


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def cnn() -> tuple[nn.Module, torch.Tensor, int]:
    """A seeded random-init CNN, a smooth seeded picture (so SLIC finds real segments) and its top class."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(128, 5),
    ).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    coarse = torch.randn(1, 3, 6, 6, generator=g)
    x = nn.functional.interpolate(coarse, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    with torch.no_grad():
        target = int(model(x).argmax())
    return model, x, target


def ours(net, method: str, **params) -> sc.Attribution:
    model, x, target = net
    return sc.attribute(model, x, method, target, use_cache=False, **params)


def replay(samples: torch.Tensor):
    """A captum perturb_func (a generator function) yielding exactly our samples, in order."""

    def perturb(_inputs, **_kwargs):
        for row in samples:
            yield row[None].long()

    return perturb


# --- cross-checks against captum --------------------------------------------------------------
@pytest.mark.parametrize("baseline", ["zero", "blur"])
def test_feature_ablation_equals_captum_with_our_segments(cnn, baseline) -> None:
    model, x, target = cnn
    a = ours(cnn, "feature_ablation", segments=20, baseline=baseline)
    labels = a.extras["segment_labels"].long()
    assert a.extras["segments"] == 20 and a.raw.shape == (20,)
    base = occlusion_baseline(x, baseline)
    theirs = FeatureAblation(model).attribute(
        x, baselines=base, target=target, feature_mask=labels[None, None]
    )
    assert rel_err(a.map, theirs[0, 0]) <= ABLATION_TOL
    assert (theirs[0] == theirs[0, :1]).all()  # the same value over the channels: one per segment


def test_lime_equals_captum_lime_with_ridge(cnn) -> None:
    model, x, target = cnn
    n, count, width = 20, 96, 0.25
    a = ours(cnn, "lime", segments=n, samples=count, kernel_width=width, alpha=1.0, seed=3)
    labels = a.extras["segment_labels"].long()
    kernel = get_exp_kernel_similarity_function("cosine", kernel_width=width)

    def similarity(_original, _perturbed, interpretable, **_kwargs):
        # LIME's distance is in the interpretable space: the pattern against the all-on pattern.
        return kernel(torch.ones_like(interpretable), interpretable, None)

    lime = Lime(model, SkLearnRidge(alpha=1.0), similarity, replay(sp.lime_samples(count, n, 3)))
    theirs = lime.attribute(
        x, target=target, feature_mask=labels[None, None], n_samples=count, perturbations_per_eval=16
    )
    assert rel_err(a.map, theirs[0, 0]) <= CAPTUM_TOL
    assert rel_err(a.raw, lime.interpretable_model.representation().flatten()) <= CAPTUM_TOL


def test_kernel_shap_equals_captum_kernel_shap(cnn) -> None:
    model, x, target = cnn
    n, count = 16, 160
    a = ours(cnn, "kernel_shap", segments=n, samples=count, seed=5)
    labels = a.extras["segment_labels"].long()
    ks = KernelShap(model)  # captum's own Shapley weights (1e6 on all on / all off) and LinearRegression
    assert isinstance(ks.interpretable_model, SkLearnLinearRegression)
    samples = sp.shap_samples(count, n, 5)
    ks.perturb_func = replay(samples)
    theirs = ks.attribute(x, target=target, feature_mask=labels[None, None], n_samples=count)
    assert rel_err(a.map, theirs[0, 0]) <= CAPTUM_TOL
    # the same weights as captum's kernel, sample by sample
    captum_weights = torch.cat(
        [ks.kernel_shap_similarity_kernel(None, None, s[None], num_interp_features=n) for s in samples]
    )
    assert torch.equal(sp.shap_weights(samples).float(), captum_weights.float())


def test_surrogate_fit_equals_sklearn() -> None:
    from sklearn.linear_model import LinearRegression, Ridge

    g = torch.Generator().manual_seed(0)
    z = torch.randint(0, 2, (60, 9), generator=g).double()
    z[:, 8] = z[:, 7]  # a duplicated column: least squares is degenerate, the minimum-norm solution is unique
    y = torch.randn(60, generator=g, dtype=torch.float64)
    w = torch.rand(60, generator=g, dtype=torch.float64) + 0.1
    for alpha, fitter in ((2.5, Ridge(alpha=2.5)), (0.0, LinearRegression())):
        fitter.fit(z.numpy(), y.numpy(), sample_weight=w.numpy())
        coef, intercept, r2 = sp.weighted_linear_fit(z, y, w, alpha)
        assert np.allclose(coef.numpy(), fitter.coef_, atol=1e-9), alpha
        assert abs(intercept - fitter.intercept_) < 1e-9
        assert abs(r2 - fitter.score(z.numpy(), y.numpy(), sample_weight=w.numpy())) < 1e-9


def test_samples_follow_their_distributions() -> None:
    n, count = 10, 20000
    shap = sp.shap_samples(count, n, 0)
    assert shap[0].all() and not shap[1].any()
    sizes = torch.bincount(shap[2:].sum(1), minlength=n + 1).double() / (count - 2)
    k = torch.arange(1, n, dtype=torch.float64)
    kernel = (n - 1) / (k * (n - k))
    assert sizes[0] == 0 and sizes[n] == 0
    assert torch.allclose(sizes[1:n], kernel / kernel.sum(), atol=0.01)  # ~4 standard errors
    assert torch.allclose(
        shap[2:].double().mean(0), torch.full((n,), 0.5, dtype=torch.float64), atol=0.02
    )  # symmetric subsets
    lime = sp.lime_samples(count, n, 0)
    assert lime[0].all() and abs(float(lime[1:].double().mean()) - 0.5) < 0.01


# --- known answers ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def linear() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    weight = torch.randn(2, 3, SIZE, SIZE, generator=g)
    x = nn.functional.interpolate(torch.randn(1, 3, 6, 6, generator=g), size=(SIZE, SIZE), mode="bilinear")
    return LinearPixels(weight).eval(), x, weight


def _segment_sums(values: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.zeros(int(labels.max()) + 1, dtype=torch.float64).index_add_(
        0, labels.flatten(), values.double().sum(0).flatten()
    )


@pytest.mark.parametrize("baseline", ["zero", "mean"])
@pytest.mark.parametrize("segmentation", ["slic", "felzenszwalb"])
def test_on_a_linear_model_ablation_and_kernel_shap_give_the_exact_segment_sums(
    linear, baseline, segmentation
) -> None:
    model, x, weight = linear
    n = 24
    fa = sc.attribute(
        model,
        x,
        "feature_ablation",
        1,
        use_cache=False,
        segments=n,
        baseline=baseline,
        segmentation=segmentation,
    )
    labels = fa.extras["segment_labels"].long()
    # Shapley value = ablation effect of a segment = sum over it of w (x - b), for a linear model
    exact = _segment_sums(weight[1] * (x - occlusion_baseline(x, baseline))[0], labels)
    scale = float(exact.abs().max())
    assert float((fa.raw.double() - exact).abs().max()) <= 1e-4 * scale
    ks = sc.attribute(
        model,
        x,
        "kernel_shap",
        1,
        use_cache=False,
        segments=n,
        samples=4 * n,
        baseline=baseline,
        segmentation=segmentation,
    )
    assert torch.equal(ks.extras["segment_labels"], fa.extras["segment_labels"])  # deterministic segments
    assert float((ks.raw.double() - exact).abs().max()) <= 1e-3 * scale
    assert ks.extras["surrogate_r2"] > 0.999999  # a linear model: the surrogate is exact
    assert torch.equal(fa.map, fa.raw[labels])  # each pixel shows its segment's value


def test_lime_puts_its_mass_on_the_only_rectangle_the_model_sees() -> None:
    box = (16, 16, 48, 48)  # x0, y0, x1, y1: four cells of a 4x4 grid on 64 px
    g = torch.Generator().manual_seed(4)
    x = torch.rand(1, 3, 64, 64, generator=g) + 0.5
    a = sc.attribute(RegionMean(box), x, "lime", 0, use_cache=False, segmentation="grid", segments=16)
    labels = a.extras["segment_labels"].long()
    inside = torch.unique(labels[16:48, 16:48])
    assert len(inside) == 4 and (labels[16:48, 16:48, None] == inside).any(-1).all()
    outside = torch.tensor([i for i in range(16) if i not in inside.tolist()])
    # each inside cell holds a quarter of the box: its exact effect is its channel-0 mean / 4
    exact = torch.stack([x[0, 0][labels == i].mean() / 4 for i in inside])
    assert torch.allclose(a.raw[inside], exact, rtol=0.05)  # the ridge penalty shrinks a little
    assert float(a.raw[outside].abs().max()) < 0.01 * float(exact.min())
    positive = a.map.clamp(min=0)
    assert float(positive[16:48, 16:48].sum() / positive.sum()) > 0.99


# --- every task ---------------------------------------------------------------------------------
TOY_SIZE = 96
BOX = (32, 24, 80, 72)  # a quarter of the image
# Share of the positive mass in the box (measured at 256 samples: feature ablation 0.996, LIME 0.967, Kernel
# SHAP 0.756; SLIC segments that straddle the box's edge carry some outside). Kernel SHAP's estimate is the
# noisiest: captum's sampling draws mostly tiny and huge coalitions, where this saturating toy barely moves.
TOY_BARS = {"feature_ablation": 0.95, "lime": 0.9, "kernel_shap": 0.65}
# The keypoint's probability depends on its cell and the cells it competes with (measured 0.77 and 0.67).
KEYPOINT_BAR = 0.6


def _concentration(saliency: torch.Tensor, box: tuple[int, int, int, int]) -> float:
    positive = saliency.clamp(min=0)
    x0, y0, x1, y1 = box
    return float(positive[y0:y1, x0:x1].sum() / positive.sum().clamp(min=1e-12))


@pytest.fixture(scope="module")
def toys() -> dict[str, tuple[sc.LoadedModel, sc.Target]]:
    engine = sc.Engine(device="cpu")
    return {
        "detection": (
            toy_model(engine, ToyDetector(BOX, (0, 0, 20, 20)), "detection", ("bg", "thing", "decoy")),
            sc.BoxTarget((33, 25, 79, 70), 1, name="thing"),
        ),
        "keypoints": (
            toy_model(engine, ToyPoseDetector(BOX), "keypoints", ("no person", "person")),
            sc.KeypointTarget((33, 25, 79, 70), "left_wrist"),
        ),
        "segmentation": (
            toy_model(engine, ToySegmenter(BOX), "segmentation", ("bg", "thing", "other")),
            sc.ClassTarget(1, label="thing"),
        ),
        "salient_object": (
            toy_model(engine, ToySegmenter(BOX, channels=1), "salient_object", ("salient",)),
            sc.MaskTarget(),
        ),
    }


@pytest.mark.parametrize("method", ["lime", "kernel_shap", "feature_ablation"])
@pytest.mark.parametrize("task", ["detection", "keypoints", "segmentation", "salient_object"])
def test_every_task_concentrates_in_the_box(toys, task, method) -> None:
    model, target = toys[task]
    params = {} if method == "feature_ablation" else {"samples": 256}
    a = sc.attribute(model, scene(TOY_SIZE, BOX), method, target, use_cache=False, **params)
    assert a.map.shape == (TOY_SIZE, TOY_SIZE) and torch.isfinite(a.map).all()
    bar = TOY_BARS[method] if task != "keypoints" else min(TOY_BARS[method], KEYPOINT_BAR)
    assert _concentration(a.map, BOX) > bar, f"{task}/{method}: {_concentration(a.map, BOX):.2f}"
    assert hook_count(model.module) == 0


# --- seeds and batches --------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["lime", "kernel_shap"])
def test_same_seed_same_map_and_the_batch_size_does_not_matter(cnn, method) -> None:
    first = ours(cnn, method, segments=12, samples=40, seed=7, batch_size=1)
    again = ours(cnn, method, segments=12, samples=40, seed=7, batch_size=7)
    other = ours(cnn, method, segments=12, samples=40, seed=8, batch_size=7)
    assert torch.allclose(first.map, again.map, rtol=1e-4, atol=1e-9 + 1e-4 * float(first.map.abs().max()))
    assert not torch.allclose(first.map, other.map, rtol=0.05)


def test_feature_ablation_does_not_depend_on_the_batch_size(cnn) -> None:
    one = ours(cnn, "feature_ablation", segments=12, batch_size=1)
    five = ours(cnn, "feature_ablation", segments=12, batch_size=5)
    assert torch.allclose(one.map, five.map, rtol=1e-4, atol=1e-4 * float(one.map.abs().max()))


# --- segments -----------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", seg.ALGORITHMS)
def test_segmentations_have_the_exact_count_and_are_deterministic(cnn, algorithm) -> None:
    _, x, _ = cnn
    picture = (x[0].permute(1, 2, 0).sigmoid() * 255).round().to(torch.uint8).numpy()
    for count in (2, 17, 60):
        labels = seg.segment(picture, algorithm, count)
        assert labels.shape == (SIZE, SIZE) and set(np.unique(labels)) == set(range(count)), count
        assert np.array_equal(labels, seg.segment(picture, algorithm, count))
        firsts = [int(np.flatnonzero(labels.ravel() == i)[0]) for i in range(count)]
        assert firsts == sorted(firsts)  # numbered in raster order


def test_exact_count_merges_small_segments_into_their_longest_border() -> None:
    labels = np.zeros((6, 6), dtype=np.int64)
    labels[:, 3:] = 1
    labels[0, 0] = 2  # a one-pixel segment bordering only segment 0
    labels[5, 5] = 3  # one bordering only segment 1
    merged = seg.exact_count(labels, 2)
    assert np.array_equal(merged, (np.arange(6) >= 3)[None].repeat(6, 0).astype(np.int64))
    split = seg.exact_count(np.zeros((4, 6), dtype=np.int64), 2)  # wider than tall: halved across columns
    assert np.array_equal(split, (np.arange(6) >= 3)[None].repeat(4, 0).astype(np.int64))
    assert np.array_equal(seg.grid(4, 4, 4), np.array([[0, 0, 1, 1]] * 2 + [[2, 2, 3, 3]] * 2))
