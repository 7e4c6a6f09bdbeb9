"""DeepLIFT (rescale rule), DeepLIFT-SHAP and GradientSHAP: known answers, summation-to-delta, and
cross-checks against captum 0.9 (DeepLift, DeepLiftShap, GradientShap's InputBaselineXGradient).

Tolerances: where the definitions are identical the relative L2 error ||ours - theirs|| / ||theirs||
must be <= 1e-4 (float32 round-off through a few layers is ~1e-6; 1e-4 leaves room for other BLAS
orderings and still catches a single wrong multiplier, which moves the map by > 1e-2).

What captum gets wrong, and how it is tested instead:
- Reused modules: captum keeps a module's input and output on the module, so a ReLU called twice per
  block (torchvision's ResNets) raises an error. Ours is compared on a ResNet-18 as torchvision builds
  it with captum on a copy whose blocks each get their own second ReLU (the same function).
- Max-pooling: captum 0.9's max-pool rule breaks its own summation-to-delta when a hooked
  nonlinearity directly precedes or follows the pool (conv-ReLU-pool, conv-pool-ReLU: convergence
  deltas of 1e-2..1e-1 on scores of 1e-1, where ours is exact to 1e-7), and its unpooling
  overwrites, not adds, where windows overlap (ResNet's 3x3/2 stem pool). Ours is checked against captum's rule written out window by window (float64),
  against captum on networks where captum's own convergence delta is ~0, and by summation-to-delta on
  the overlapping-pool ResNet-18.
"""

from __future__ import annotations

import copy
import types
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from captum.attr import DeepLift, DeepLiftShap, GradientShap
from captum.attr._core.gradient_shap import InputBaselineXGradient
from known_models import LinearPixels, one_torch_thread
from task_models import ToyDetector, ToyPoseDetector, ToySegmenter, scene, toy_model
from torch import nn

import saliency_core as sc
from saliency_core.hooks import hook_count
from saliency_core.methods.base import get_method
from saliency_core.methods.baselines import blur_sigmas, reference_count
from saliency_core.methods.common import BatchDraws, default_blur_sigma, gaussian_blur
from saliency_core.methods.deeplift_rules import rescale_rules
from saliency_core.methods.reference_gradients import GRADIENT_SHAP_SET, gradient_shap_draws

EXACT = 1e-4


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with one_torch_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # captum's warnings about in-place modules and set hooks
        yield


def rel_err(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    ours = ours.detach().double().cpu().reshape(theirs.shape)
    theirs = theirs.detach().double().cpu()
    return float((ours - theirs).norm() / theirs.norm())


def ours(model: nn.Module, x: torch.Tensor, method: str, target: int, **params) -> sc.Attribution:
    return sc.attribute(model, x, method, target, use_cache=False, **params)


def small_cnn() -> nn.Module:
    """Seeded CNN with ReLUs (one in place) and max-pools, a convolution between each pool and each
    nonlinearity (captum's pool rule holds then), and every activation captum knows in the head."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(6, 6, 3, padding=1),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 8 * 8, 16),
        nn.Tanh(),
        nn.Linear(16, 16),
        nn.ELU(),
        nn.Linear(16, 16),
        nn.Softplus(),
        nn.Linear(16, 16),
        nn.LeakyReLU(0.1),
        nn.Linear(16, 16),
        nn.Sigmoid(),
        nn.Linear(16, 5),
    ).eval()


def relu_pool_cnn() -> nn.Module:
    """ReLU right before max-pool (the usual order, which captum 0.9 gets wrong), overlapping windows."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),  # overlapping windows
        nn.Flatten(),
        nn.Linear(8 * 8 * 8, 5),
    ).eval()


def seeded(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


X32 = seeded((1, 3, 32, 32), 1)


def resnet18() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=10).eval()


def unrolled(model: nn.Module) -> nn.Module:
    """A copy whose BasicBlocks call a second ReLU module instead of reusing `relu` (same function)."""
    copied = copy.deepcopy(model)

    def forward(self, x):  # torchvision's BasicBlock.forward, with relu2 at the end
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu2(out + identity)

    for layer in (copied.layer1, copied.layer2, copied.layer3, copied.layer4):
        for block in layer:
            block.relu2 = copy.deepcopy(block.relu)
            block.forward = types.MethodType(forward, block)
    return copied


# --- known answers ------------------------------------------------------------------------------
def test_hand_computed_two_unit_relu_net_where_gradient_and_deeplift_differ():
    # h1 = relu(x1 + x2 - 1), h2 = relu(1 - x1), out = h1 + h2; x = (2, 1), reference 0.
    # h1: 2 vs 0 (pre 2 vs -1): m1 = 2/3. h2: 0 vs 1 (pre -1 vs 1): m2 = 1/2, though its gradient is 0.
    # Multipliers: d/dx1 = m1 - m2 = 1/6, d/dx2 = m1 = 2/3; attributions (1/3, 2/3), summing to
    # f(x) - f(0) = 2 - 1 = 1. Gradient x input gives (2, 1), summing to 3.
    net = nn.Sequential(nn.Flatten(), nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1)).eval()
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[1.0, 1.0], [-1.0, 0.0]]))
        net[1].bias.copy_(torch.tensor([-1.0, 1.0]))
        net[3].weight.fill_(1.0)
        net[3].bias.zero_()
    x = torch.tensor([2.0, 1.0]).view(1, 1, 1, 2)
    a = ours(net, x, "deeplift", 0, baseline="zero")
    assert torch.allclose(a.raw.flatten(), torch.tensor([1 / 3, 2 / 3]), atol=1e-6)
    assert a.extras["score_difference"] == pytest.approx(1.0)
    assert abs(a.extras["summation_delta"]) < 1e-6
    gxi = ours(net, x, "gradient_x_input", 0)
    assert torch.allclose(gxi.raw.flatten(), torch.tensor([2.0, 1.0]))


def test_maxpool_rule_equals_captums_rule_written_out_window_by_window():
    torch.manual_seed(0)
    conv, lin = nn.Conv2d(2, 3, 3, padding=1).double(), nn.Linear(27, 1).double()
    net = nn.Sequential(conv, nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(), lin).eval()
    x, ref = seeded((1, 2, 6, 6), 1).double(), seeded((1, 2, 6, 6), 2).double()
    with torch.no_grad():
        h, hr = conv(x)[0], conv(ref)[0]
        p, pr = F.max_pool2d(h[None], 2)[0], F.max_pool2d(hr[None], 2)[0]
        g_p = lin.weight.view(3, 3, 3) * (p.clamp(min=0) - pr.clamp(min=0)) / (p - pr)  # ReLU's m
        spread = torch.zeros_like(h)
        for c, i, j in np.ndindex(3, 3, 3):
            a = divmod(int(h[c, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].argmax()), 2)
            b = divmod(int(hr[c, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].argmax()), 2)
            top = max(p[c, i, j], pr[c, i, j])
            spread[c, 2 * i + a[0], 2 * j + a[1]] += g_p[c, i, j] * (top - pr[c, i, j])
            spread[c, 2 * i + b[0], 2 * j + b[1]] += g_p[c, i, j] * (p[c, i, j] - top)
    leaf = x.clone().requires_grad_(True)
    (g_x,) = torch.autograd.grad(conv(leaf), leaf, (spread / (h - hr))[None])
    expected = (x - ref) * g_x
    xs = torch.cat([x, ref]).requires_grad_(True)
    with rescale_rules(net):
        (g,) = torch.autograd.grad(net(xs)[:, 0].sum(), xs)
    assert rel_err((x - ref) * g[:1], expected) <= 1e-10
    assert hook_count(net) == 0


# --- cross-checks against captum ----------------------------------------------------------------
@pytest.mark.parametrize("baseline", ["zero", "blur"])
def test_deeplift_matches_captum_on_a_small_cnn(baseline):
    net = small_cnn()
    ref = torch.zeros_like(X32) if baseline == "zero" else gaussian_blur(X32, default_blur_sigma(X32))
    theirs, delta = DeepLift(net).attribute(X32, baselines=ref, target=2, return_convergence_delta=True)
    a = ours(net, X32, "deeplift", 2, baseline=baseline)
    assert rel_err(a.raw, theirs[0]) <= EXACT
    assert rel_err(a.map, theirs[0].sum(0)) <= EXACT
    assert a.extras["summation_delta"] == pytest.approx(float(delta), abs=1e-5)


def test_deeplift_with_reused_relus_matches_captum_on_unrolled_resnet18():
    # Captum's pool rule fails next to a ReLU and with overlapping windows, so here (for both) the stem
    # is conv, bn, 2x2 pool, no ReLU; the blocks keep torchvision's reused ReLU on our side.
    model = resnet18()
    model.relu, model.maxpool = nn.Identity(), nn.MaxPool2d(2, 2)
    x = seeded((1, 3, 64, 64), 1)
    theirs, delta = DeepLift(unrolled(model)).attribute(
        x, baselines=torch.zeros_like(x), target=3, return_convergence_delta=True
    )
    a = ours(model, x, "deeplift", 3, baseline="zero")
    assert rel_err(a.raw, theirs[0]) <= EXACT
    assert abs(float(delta)) < 1e-4 * abs(a.extras["score_difference"])  # captum right here
    # A blurred reference has non-zero activations: multipliers are no longer gradients.
    blurred = gaussian_blur(x, default_blur_sigma(x))
    theirs, delta = DeepLift(unrolled(model)).attribute(
        x, baselines=blurred, target=3, return_convergence_delta=True
    )
    theirs = theirs[0]
    a = ours(model, x, "deeplift", 3, baseline="blur")
    assert rel_err(a.raw, theirs) <= EXACT
    assert abs(float(delta)) < 1e-4 * abs(a.extras["score_difference"])
    assert rel_err((x - blurred)[0] * ours(model, x, "gradient", 3).raw, theirs) > 1e-2
    assert hook_count(model) == 0


def test_deeplift_shap_matches_captum_with_the_same_references():
    net = small_cnn()
    refs = torch.cat([gaussian_blur(X32, s) for s in blur_sigmas(X32, 4)])
    theirs = DeepLiftShap(net).attribute(X32, baselines=refs, target=1)
    a = ours(net, X32, "deeplift_shap", 1, distribution="blur", baselines=4)
    # Four references through ReLUs and max-pools: a unit at zero or a pooling tie goes the BLAS's way,
    # which differs between machines (5e-4 seen on one); the single-reference tests above stay at EXACT.
    assert rel_err(a.raw, theirs[0]) <= 1e-3
    assert abs(a.extras["summation_delta"]) <= 1e-4 * abs(a.extras["score_difference"]) + 1e-6


def test_gradient_shap_matches_captum_with_the_same_draws(monkeypatch):
    net, n, noise, seed = small_cnn(), 6, 0.05, 3
    refs = torch.cat([gaussian_blur(X32, s) for s in blur_sigmas(X32, GRADIENT_SHAP_SET)])
    index, alpha, eps = gradient_shap_draws(BatchDraws(seed).at(0), n, len(refs), X32.shape[1:], True)
    noisy = X32 + eps * noise * float(X32.max() - X32.min())
    # GradientShap = NoiseTunnel(InputBaselineXGradient): fed our noisy copies, baselines and alphas.
    monkeypatch.setattr(np.random, "uniform", lambda low, high, size: alpha.numpy()[:size])
    theirs = InputBaselineXGradient(net).attribute(noisy, baselines=refs[index], target=4).mean(0)
    a = ours(net, X32, "gradient_shap", 4, samples=n, distribution="blur", noise=noise, seed=seed)
    assert rel_err(a.raw, theirs) <= EXACT


def test_gradient_shap_expectation_on_a_linear_model_with_captum():
    # Linear: every gradient is W, so the attribution is W * (x - mean of the drawn references); its
    # expectation W * (x - mean of the set). Statistical bound: the error's norm over k standard errors.
    weight = seeded((2, 3, 8, 8), 5)
    model = LinearPixels(weight).eval()
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    refs = torch.cat([gaussian_blur(x, s) for s in blur_sigmas(x, GRADIENT_SHAP_SET)])
    n = 400
    a = ours(model, x, "gradient_shap", 1, samples=n, distribution="blur", seed=7)
    index, _, _ = gradient_shap_draws(BatchDraws(7).at(0), n, len(refs), x.shape[1:], False)
    assert rel_err(a.raw, weight[1] * (x[0] - refs[index].mean(0))) <= EXACT  # exact for these draws
    expected = weight[1] * (x[0] - refs.mean(0))
    standard_error = (weight[1] * refs.std(0, unbiased=False) / n**0.5).norm()
    np.random.seed(0)
    theirs = GradientShap(model).attribute(x, baselines=refs, target=1, n_samples=n)[0]
    for estimate in (a.raw, theirs):
        assert float((estimate - expected).norm()) <= 3 * float(standard_error)


def test_gradient_shap_is_seeded_and_independent_of_the_batch_size():
    net = small_cnn()
    one = ours(net, X32, "gradient_shap", 0, samples=7, noise=0.1, seed=5, batch_size=1)
    many = ours(net, X32, "gradient_shap", 0, samples=7, noise=0.1, seed=5, batch_size=3)
    other = ours(net, X32, "gradient_shap", 0, samples=7, noise=0.1, seed=6, batch_size=3)
    assert torch.allclose(one.raw, many.raw, rtol=1e-5, atol=1e-7)
    assert not torch.allclose(one.raw, other.raw, rtol=1e-3)


# --- summation-to-delta --------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["relu_pool_cnn", "resnet18"])
@pytest.mark.parametrize("method", ["deeplift", "deeplift_shap"])
def test_summation_to_delta_on_relu_and_maxpool_nets(arch, method):
    model = relu_pool_cnn() if arch == "relu_pool_cnn" else resnet18()
    x = X32 if arch == "relu_pool_cnn" else seeded((1, 3, 64, 64), 1)
    params = {"baseline": "blur"} if method == "deeplift" else {"distribution": "uniform", "baselines": 3}
    a = ours(model, x, method, 3, **params)
    with torch.no_grad():
        if method == "deeplift":
            f_ref = model(gaussian_blur(x, default_blur_sigma(x)))[0, 3]
        else:  # the uniform references, rebuilt as ig_baseline makes them
            pixels = [torch.rand(x.shape, generator=torch.Generator().manual_seed(k)) for k in range(3)]
            f_ref = model(torch.cat(pixels))[:, 3].mean()
        difference = float(model(x)[0, 3] - f_ref)
    assert a.extras["score_difference"] == pytest.approx(difference, rel=1e-5)
    assert abs(float(a.raw.sum()) - difference) <= 1e-4 * abs(difference)
    assert abs(a.extras["summation_delta"]) <= 1e-4 * abs(difference)
    assert hook_count(model) == 0


def test_the_hooks_keep_the_forward_values_and_leave_nothing_behind():
    model = resnet18()
    xs = torch.cat([seeded((1, 3, 64, 64), 1), torch.zeros(1, 3, 64, 64)]).requires_grad_(True)
    with torch.no_grad():
        plain = model(xs)
    with rescale_rules(model):
        hooked = model(xs)
    assert torch.equal(hooked.detach(), plain)
    with pytest.raises(RuntimeError, match="boom"), rescale_rules(model):
        model(xs)
        raise RuntimeError("boom")
    assert hook_count(model) == 0


# --- tasks, model checks, baselines --------------------------------------------------------------
SIZE, BOX, DECOY = 96, (32, 24, 80, 72), (0, 0, 20, 20)


def concentration(saliency: torch.Tensor, box: tuple[int, int, int, int]) -> float:
    positive = (saliency - saliency.median()).clamp(min=0)
    x0, y0, x1, y1 = box
    return float(positive[y0:y1, x0:x1].sum() / positive.sum().clamp(min=1e-12))


@pytest.fixture(scope="module")
def toys() -> tuple[sc.Engine, dict[str, sc.LoadedModel]]:
    engine = sc.Engine(device="cpu")
    return engine, {
        "detection": toy_model(engine, ToyDetector(BOX, DECOY), "detection", ("bg", "thing", "decoy")),
        "keypoints": toy_model(engine, ToyPoseDetector(BOX), "keypoints", ("no person", "person")),
        "segmentation": toy_model(engine, ToySegmenter(BOX), "segmentation", ("bg", "thing", "other")),
        "salient_object": toy_model(engine, ToySegmenter(BOX, channels=1), "salient_object", ("salient",)),
    }


@pytest.mark.parametrize("task", ["detection", "keypoints", "segmentation", "salient_object"])
def test_every_task_toy(toys, task):
    engine, models = toys
    model, image = models[task], scene(SIZE, BOX)
    target = {
        "detection": sc.BoxTarget((33, 25, 79, 70), 1, name="thing"),  # not the constant-score decoy
        "keypoints": sc.KeypointTarget((33, 25, 79, 70), "left_wrist"),
        "segmentation": sc.ClassTarget(1, label="thing"),
        "salient_object": sc.MaskTarget(),
    }[task]
    runs = {"gradient_shap": {"samples": 8}}
    if task in ("segmentation", "salient_object"):
        runs |= {"deeplift": {"baseline": "black"}, "deeplift_shap": {"baselines": 3}}
    else:  # proposals are not paired between input and reference: not offered, and said so
        for method in ("deeplift", "deeplift_shap"):
            assert "does not apply" in get_method(method).unsupported(model)
    for method, params in runs.items():
        a = engine.attribute(model, image, method, target, use_cache=False, **params)
        assert concentration(a.map, BOX) >= 0.8, method
        if method != "gradient_shap":  # the toys' scores are linear in the output: exact summation
            assert abs(a.extras["summation_delta"]) <= 1e-4 * abs(a.extras["score_difference"]) + 1e-5
        assert hook_count(model.module) == 0


class FunctionalNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.conv(x)).mean((2, 3)))


def test_model_check_names_models_without_known_nonlinearity_modules():
    engine = sc.Engine(device="cpu")
    functional = engine.wrap(FunctionalNet().eval())
    for method in ("deeplift", "deeplift_shap"):
        assert "functional" in get_method(method).unsupported(functional)
        assert get_method(method).unsupported(engine.wrap(small_cnn())) == ""
    listed = {m.id for m in sc.list_methods(model=functional)}
    assert "gradient_shap" in listed and "deeplift" not in listed


def test_sample_references_are_the_bundled_pictures_resized_and_preprocessed():
    engine = sc.Engine(device="cpu")
    model = toy_model(engine, ToySegmenter(BOX), "segmentation", ("bg", "thing", "other"))  # identity
    image = scene(SIZE, BOX)
    target = model.predict(image, top_k=1)[0]
    samples = sc.list_samples()
    assert reference_count("samples", 1000) == len(samples) and reference_count("black", 9) == 1
    a = engine.attribute(model, image, "deeplift_shap", target, distribution="samples", baselines=2, seed=1)
    order = torch.randperm(len(samples), generator=torch.Generator().manual_seed(1)).tolist()[:2]
    refs = []
    for i in order:  # identity preprocessing: the picture's pixels in [0, 1] at the input's size
        pixels = np.asarray(samples[i].image().resize((SIZE, SIZE), resample=2), dtype=np.float32) / 255
        refs.append(torch.from_numpy(pixels).permute(2, 0, 1))
    with torch.no_grad():
        f_refs = target(model.forward(torch.stack(refs))).mean()
        difference = float(target(model.forward(image)).sum() - f_refs)
    assert a.extras["score_difference"] == pytest.approx(difference, rel=1e-4, abs=1e-4)
    est = engine.estimate(model, "deeplift_shap", {"distribution": "samples", "baselines": 64}, x=image)
    run = sc.Engine(device="cpu").attribute(
        model, image, "deeplift_shap", target, distribution="samples", baselines=64
    )
    assert (est.forward_passes, est.backward_passes) == (run.forward_passes, run.backward_passes)
    assert run.backward_passes == 2 * len(samples)
