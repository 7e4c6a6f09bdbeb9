"""Cross-checks of the gradient, perturbation and Grad-CAM methods against captum.

Two random-init torchvision architectures that differ in structure: ResNet-18 (residual blocks,
batch norm, one in-place ReLU module reused twice per block) and AlexNet (plain stack, no batch
norm, in-place ReLUs, dropout and fully connected layers). Where the definitions are identical the
relative L2 error ||ours - theirs|| / ||theirs|| must be <= 1e-4; where only the resizing differs,
Pearson r >= 0.99.

Deliberate differences from captum, documented here and tested for what is comparable:
- riemann_trapezoid: captum weights its n points by 1/n (halved at both ends), so the weights sum to
  (n - 1) / n and the attributions fall short of completeness by that factor. Ours is the trapezoidal
  rule on n points spaced 1/(n - 1) apart (weights sum to 1, exact for a function linear along the
  path). Ours equals captum's times n / (n - 1).
- Guided Grad-CAM: captum upsamples the Grad-CAM map with `nearest` by default, ours bilinearly; with
  captum's `interpolate_mode="bilinear"` the two are identical.
- SmoothGrad: captum's NoiseTunnel draws its noise from the global RNG, so it is checked analytically
  (and against NoiseTunnel on a linear model, where the noise does not matter).
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from captum.attr import (
    GuidedBackprop,
    GuidedGradCam,
    InputXGradient,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from known_models import one_torch_thread, random_classifier
from torch import nn

import saliency_core as sc
from saliency_core.hooks import hook_count

SIZE = 112
# name -> CAM layer (ResNet-18 layer4 is 4x4 at 112 px, AlexNet's last ReLU 6x6)
ARCHS = {"resnet18": "layer4", "alexnet": "features.11"}
EXACT = 1e-4
IG_STEPS = 8


def rel_err(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    ours = ours.detach().double().cpu().reshape(theirs.shape)
    theirs = theirs.detach().double().cpu()
    return float((ours - theirs).norm() / theirs.norm())


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    stacked = torch.stack([a.detach().double().flatten(), b.detach().double().flatten()])
    return float(torch.corrcoef(stacked)[0, 1])


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module", params=sorted(ARCHS))
def net(request):
    """(model, input, target class, CAM layer name) on one architecture, all seeded."""
    model, x, target = random_classifier(request.param, SIZE)
    for p in model.parameters():
        p.requires_grad_(False)  # only input gradients are needed: faster backward passes
    return model, x, target, ARCHS[request.param]


def ours(net, method: str, **params) -> sc.Attribution:
    model, x, target, _ = net
    return sc.attribute(model, x, method, target, use_cache=False, **params)


# --- pixel-gradient methods ------------------------------------------------------------------------
def test_gradient_matches_saliency(net):
    model, x, target, _ = net
    theirs = Saliency(model).attribute(x, target=target, abs=False)[0]
    a = ours(net, "gradient")
    assert a.raw.shape == theirs.shape
    assert rel_err(a.raw, theirs) <= EXACT
    assert rel_err(a.map, theirs.sum(0)) <= EXACT


def test_gradient_x_input_matches_input_x_gradient(net):
    model, x, target, _ = net
    theirs = InputXGradient(model).attribute(x.clone(), target=target)[0]
    assert rel_err(ours(net, "gradient_x_input").raw, theirs) <= EXACT


def test_guided_backprop_matches(net):
    model, x, target, _ = net
    theirs = GuidedBackprop(model).attribute(x.clone(), target=target)[0]
    a = ours(net, "guided_backprop")
    assert rel_err(a.raw, theirs) <= EXACT
    assert rel_err(a.map, theirs.sum(0)) <= EXACT


@pytest.mark.parametrize(
    "rule, steps",
    [
        ("gausslegendre", IG_STEPS),
        ("riemann_left", 4),
        ("riemann_right", 4),
        ("riemann_middle", 4),
    ],
)
def test_integrated_gradients_matches(net, rule, steps):
    model, x, target, _ = net
    theirs, delta = IntegratedGradients(model).attribute(
        x,
        baselines=torch.zeros_like(x),
        target=target,
        n_steps=steps,
        method=rule,
        return_convergence_delta=True,
    )
    a = ours(net, "integrated_gradients", steps=steps, baseline="zero", rule=rule)
    assert rel_err(a.raw, theirs[0]) <= EXACT
    # Same completeness gap: sum(attributions) - (f(x) - f(baseline)).
    assert a.extras["completeness_delta"] == pytest.approx(float(delta), abs=1e-3)


def test_integrated_gradients_trapezoid_is_captums_rescaled(net):
    # Definitional difference (see the module docstring): captum's trapezoid weights sum to (n-1)/n.
    model, x, target, _ = net
    # n - 1 a power of two: captum's float32 linspace points are then exactly ours (otherwise they
    # differ by an ulp, which flips the odd ReLU/max-pool tie and moves the gradient by ~1e-3).
    n = 9
    theirs = IntegratedGradients(model).attribute(
        x, baselines=torch.zeros_like(x), target=target, n_steps=n, method="riemann_trapezoid"
    )[0]
    a = ours(net, "integrated_gradients", steps=n, baseline="zero", rule="riemann_trapezoid")
    assert rel_err(a.raw, theirs * n / (n - 1)) <= EXACT
    assert rel_err(a.raw, theirs) == pytest.approx(1 / (n - 1), rel=1e-3)


def test_trapezoid_is_exact_on_a_linear_model():
    # Why ours differs from captum's trapezoid: for f linear along the path the rule must be exact.
    model = _linear_model()
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        difference = float(model(x)[0, 2] - model(torch.zeros_like(x))[0, 2])
    n = 5
    a = sc.attribute(model, x, "integrated_gradients", 2, steps=n, baseline="zero", rule="riemann_trapezoid")
    assert float(a.raw.sum()) == pytest.approx(difference, rel=1e-5)
    theirs = IntegratedGradients(model).attribute(
        x, baselines=0.0, target=2, n_steps=n, method="riemann_trapezoid"
    )
    assert float(theirs.sum()) == pytest.approx(difference * (n - 1) / n, rel=1e-5)


# --- occlusion -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "patch, stride",
    [
        (56, 28),  # tiles 112 evenly: windows at 0, 28, 56
        (40, 30),  # does not: windows at 0, 30, 60, 90, the last one hangs over the edge
    ],
)
def test_occlusion_matches(net, patch, stride):
    model, x, target, _ = net
    theirs = Occlusion(model).attribute(
        x, sliding_window_shapes=(3, patch, patch), strides=(3, stride, stride), baselines=0, target=target
    )[0]
    # Windows span all channels, so captum's map is the same in every channel.
    assert torch.equal(theirs[0], theirs[1]) and torch.equal(theirs[0], theirs[2])
    a = ours(net, "occlusion", patch=patch, stride=stride, baseline="zero")
    assert a.raw.shape == (SIZE, SIZE)
    assert rel_err(a.raw, theirs[0]) <= EXACT
    assert rel_err(a.map, theirs[0]) <= EXACT


# --- Grad-CAM and Guided Grad-CAM ------------------------------------------------------------------
def test_gradcam_matches_layer_gradcam(net):
    model, x, target, layer = net
    theirs = LayerGradCam(model, model.get_submodule(layer)).attribute(
        x, target=target, relu_attributions=False
    )
    a = ours(net, "gradcam", layer=layer)
    assert a.raw.shape == theirs.shape[-2:]
    assert rel_err(a.raw, theirs[0, 0]) <= EXACT
    # The map is the bilinear (align_corners=False) upsampling of the raw map, signed.
    upsampled = LayerAttribution.interpolate(theirs, (SIZE, SIZE), interpolate_mode="bilinear")[0, 0]
    assert rel_err(a.map, upsampled) <= EXACT


def test_gradcam_at_a_layer_overwritten_in_place():
    # AlexNet's features.10 is a conv whose output the next ReLU(inplace=True) overwrites: the
    # captured activations must still be the conv's (pre-ReLU) output, as captum sees them.
    torch.manual_seed(0)
    model = torchvision.models.alexnet(weights=None).eval()
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    theirs = LayerGradCam(model, model.features[10]).attribute(x, target=7, relu_attributions=False)[0, 0]
    a = sc.attribute(model, x, "gradcam", 7, layer="features.10", use_cache=False)
    assert rel_err(a.raw, theirs) <= EXACT


def test_guided_gradcam_matches(net):
    model, x, target, layer = net
    guided = GuidedGradCam(model, model.get_submodule(layer))
    a = ours(net, "guided_gradcam", layer=layer)
    # Same upsampling: identical.
    bilinear = guided.attribute(x.clone(), target=target, interpolate_mode="bilinear")[0]
    assert rel_err(a.raw, bilinear) <= EXACT
    # captum's default (nearest) upsampling differs only in the resizing.
    nearest = guided.attribute(x.clone(), target=target)[0]
    assert pearson(a.raw, nearest) >= 0.99
    assert pearson(a.map, nearest.sum(0)) >= 0.99


# --- SmoothGrad: analytic checks ------------------------------------------------------------------
def _linear_model() -> nn.Module:
    torch.manual_seed(5)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4)).eval()


@pytest.fixture(scope="module")
def linear():
    model = _linear_model()
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    weight = model[1].weight.detach()[1].reshape(3, 8, 8)  # the gradient of logit 1, everywhere
    return model, x, weight


@pytest.mark.parametrize("nt_type", ["smoothgrad", "smoothgrad_sq", "vargrad"])
def test_smoothgrad_on_a_linear_model(linear, nt_type):
    # The gradient of a linear model is the same at every noisy copy: SmoothGrad is the gradient,
    # SmoothGrad² its square and VarGrad zero, whatever the noise.
    model, x, weight = linear
    expected = {"smoothgrad": weight, "smoothgrad_sq": weight**2, "vargrad": torch.zeros_like(weight)}[
        nt_type
    ]
    a = sc.attribute(model, x, "smoothgrad", 1, samples=6, noise=0.3, mode=nt_type, seed=4, use_cache=False)
    theirs = NoiseTunnel(Saliency(model)).attribute(
        x, nt_type=nt_type, nt_samples=6, stdevs=0.3, target=1, abs=False
    )[0]
    scale = float((weight**2).max())
    assert torch.allclose(a.raw, expected, atol=1e-6 * scale, rtol=1e-5)
    assert torch.allclose(theirs, expected, atol=1e-6 * scale, rtol=1e-5)
    if nt_type != "vargrad":
        assert rel_err(a.raw, theirs) <= EXACT


def test_smoothgrad_without_noise_is_the_base_method(net):
    for base, plain in (("gradient", "gradient"), ("guided_backprop", "guided_backprop")):
        smooth = ours(net, "smoothgrad", samples=2, noise=0.0, base=base, seed=0)
        assert rel_err(smooth.raw, ours(net, plain).raw) <= EXACT
    smooth = ours(net, "smoothgrad", samples=2, noise=0.0, base="gradient_x_input")
    assert rel_err(smooth.raw, ours(net, "gradient_x_input").raw) <= EXACT


def test_smoothgrad_seeded_and_independent_of_batch_size(net):
    params = {"samples": 3, "noise": 0.2, "mode": "smoothgrad"}
    first = ours(net, "smoothgrad", seed=11, batch_size=1, **params)
    again = ours(net, "smoothgrad", seed=11, batch_size=3, **params)
    other = ours(net, "smoothgrad", seed=12, batch_size=3, **params)
    assert rel_err(first.raw, again.raw) <= EXACT
    assert rel_err(other.raw, again.raw) > 1e-2


def test_no_hooks_left(net):
    model = net[0]
    assert hook_count(model) == 0
