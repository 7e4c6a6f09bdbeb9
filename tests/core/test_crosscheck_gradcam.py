"""Cross-checks of the CAM methods against pytorch-grad-cam.

Two random-init torchvision architectures: ResNet-18 (residual, batch norm) and AlexNet (plain, no
batch norm, in-place ReLUs). For every method the anchor's `get_cam_image` output (its own
`ActivationsAndGradients` capture, recorded during one end-to-end call) must equal our `raw` at the
layer's resolution (relative L2 error <= 1e-4), and its end-to-end output must match our `map`.

Deliberate differences, documented here and tested for what is comparable:
- End to end, pytorch-grad-cam applies ReLU at the layer's resolution, then min-max normalises and
  resizes (cv2 INTER_LINEAR, the same as bilinear with align_corners=False), then min-max normalises
  again. Our `map` is the signed bilinear upsampling of `raw`; ReLU and normalisation are left to the
  viewer, so they come after the upsampling. Applying ReLU before or after bilinear upsampling gives
  the same result when the raw map has no negative values; otherwise the two differ near the sign
  changes. So the anchor's output must equal norm(upsample(norm(relu(raw)))) exactly (its two
  normalisations, each with a 1e-7 epsilon), and correlate with
  norm(relu(map)) at r >= 0.99 for non-negative raw maps (>= 0.95 for signed ones).
- Eigen-CAM: the sign of a principal component is arbitrary (pytorch-grad-cam keeps whatever the SVD
  returns); ours is chosen to correlate positively with the mean activation. Compared up to sign.
- In-place ops: at a layer whose output a later ReLU(inplace=True) overwrites, pytorch-grad-cam keeps
  the overwritten (post-ReLU) activations next to the pre-ReLU gradients; ours keeps the layer's true
  output (as captum does, see test_crosscheck_captum.py).
- pytorch-grad-cam calls `model.zero_grad(); loss.backward()`, which writes `param.grad`; it is used
  here on test-only models, and the gradients are cleared afterwards.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from known_models import one_torch_thread, random_classifier
from pytorch_grad_cam import (
    EigenCAM,
    GradCAM,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

import saliency_core as sc
from saliency_core.hooks import hook_count
from saliency_core.methods.cam import gradcam as gradcam_weighting

SIZE = 112
# name -> (CAM layer, Score-CAM layer with few channels: 64 forward passes per Score-CAM run)
ARCHS = {
    "resnet18": ("layer4", "layer1"),  # 4x4x512 and 28x28x64 at 112 px
    "alexnet": ("features.11", "features.2"),  # 6x6x256 and 13x13x64
}
SCORECAM_BATCH = 16
EXACT = 1e-4

METHODS = {
    "gradcam": GradCAM,
    "gradcam_pp": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "hirescam": HiResCAM,
    "layercam": LayerCAM,
    "scorecam": ScoreCAM,
    "eigencam": EigenCAM,
}


def rel_err(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    ours = torch.as_tensor(ours).detach().double().reshape(theirs.shape)
    theirs = torch.as_tensor(theirs).detach().double()
    return float((ours - theirs).norm() / theirs.norm())


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    stacked = torch.stack([torch.as_tensor(a).double().flatten(), torch.as_tensor(b).double().flatten()])
    return float(torch.corrcoef(stacked)[0, 1])


def minmax(m: torch.Tensor) -> torch.Tensor:
    m = m - m.min()
    return m / (m.max() + 1e-7)


def upsample(m: torch.Tensor) -> torch.Tensor:
    return F.interpolate(m[None, None].float(), size=(SIZE, SIZE), mode="bilinear", align_corners=False)[0, 0]


def recording(cls: type) -> type:
    """The anchor's class, keeping what its own `get_cam_image` returned (and the activations it saw)."""

    class Recording(cls):
        def get_cam_image(self, input_tensor, target_layer, targets, activations, grads, eigen_smooth):
            cam = super().get_cam_image(input_tensor, target_layer, targets, activations, grads, eigen_smooth)
            self.recorded = (np.array(cam), np.array(activations))
            return cam

    Recording.__name__ = f"Recording{cls.__name__}"
    return Recording


def run_anchor(cls: type, model, x, target: int, layer: str, **settings):
    """(raw [h, w], activations [K, h, w], end-to-end output [H, W]) from one pytorch-grad-cam call."""
    try:
        with recording(cls)(model, [model.get_submodule(layer)]) as cam:
            for key, value in settings.items():
                setattr(cam, key, value)
            out = cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])
            raw, acts = cam.recorded
    finally:
        model.zero_grad(set_to_none=True)
    assert hook_count(model) == 0
    return torch.from_numpy(raw[0]), torch.from_numpy(acts[0]), torch.from_numpy(out[0])


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module", params=sorted(ARCHS))
def net(request):
    model, x, target = random_classifier(request.param, SIZE)
    return request.param, model, x, target


@pytest.mark.parametrize("method", sorted(METHODS))
def test_cam_matches_pytorch_grad_cam(net, method):
    name, model, x, target = net
    cam_layer, score_layer = ARCHS[name]
    layer = score_layer if method == "scorecam" else cam_layer
    settings = {"batch_size": SCORECAM_BATCH} if method == "scorecam" else {}

    theirs_raw, acts, theirs_out = run_anchor(METHODS[method], model, x, target, layer, **settings)
    a = sc.attribute(model, x, method, target, layer=layer, use_cache=False, **settings)
    assert a.raw.shape == theirs_raw.shape
    assert a.map.shape == (SIZE, SIZE)

    raw = a.raw
    if method == "eigencam":
        # Ours: positively correlated with the mean activation; theirs: the SVD's arbitrary sign.
        mean_act = acts.mean(0)
        assert pearson(raw, mean_act) > 0
        assert abs(pearson(raw, theirs_raw)) >= 0.99
        if pearson(raw, theirs_raw) < 0:
            raw = -raw
    # At the layer's resolution the definitions are identical.
    assert rel_err(raw, theirs_raw) <= EXACT

    # End to end: the anchor's pipeline applied to our raw map reproduces its output exactly ...
    assert rel_err(minmax(upsample(minmax(raw.clamp(min=0)))), theirs_out) <= EXACT
    # ... and our (signed, upsampled) map after ReLU and normalisation correlates with it.
    ours_map = a.map if raw is a.raw else -a.map
    threshold = 0.99 if bool((raw >= 0).all()) else 0.95
    assert pearson(minmax(ours_map.clamp(min=0)), theirs_out) >= threshold


def test_in_place_overwritten_layer():
    # AlexNet's features.10 is a conv followed by ReLU(inplace=True). pytorch-grad-cam's stored
    # activations share storage with the conv output, so the ReLU overwrites them, while its gradient
    # hook still gives the pre-ReLU gradient: its map is the Grad-CAM of (ReLU(A), dS/dA). Ours is the
    # Grad-CAM of (A, dS/dA), as captum's LayerGradCam (checked in test_crosscheck_captum.py).
    torch.manual_seed(0)
    model = torchvision.models.alexnet(weights=None).eval()
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    target = 7

    captured = {}

    def keep(_module, _inputs, output):
        captured["a"] = output
        return output.clone()  # the in-place ReLU then overwrites the copy, not the captured tensor

    handle = model.features[10].register_forward_hook(keep)
    try:
        xg = x.clone().requires_grad_(True)
        score = model(xg)[0, target]
        (grad,) = torch.autograd.grad(score, [captured["a"]])
    finally:
        handle.remove()
    a_true, g = captured["a"].detach()[0], grad[0]
    assert bool((a_true < 0).any())  # the layer's true output has negative values

    ours = sc.attribute(model, x, "gradcam", target, layer="features.10", use_cache=False)
    assert rel_err(ours.raw, gradcam_weighting(a_true, g)) <= EXACT

    theirs_raw, theirs_acts, _ = run_anchor(GradCAM, model, x, target, "features.10")
    assert rel_err(theirs_acts, a_true.clamp(min=0)) <= EXACT
    assert rel_err(theirs_raw, gradcam_weighting(a_true.clamp(min=0), g)) <= EXACT
    assert rel_err(ours.raw, theirs_raw) > 1e-2


def test_reuse_across_gradient_cams(net):
    # With the cache on, the gradient CAMs after the first reuse its activations and gradients
    # (no model pass) and still match the anchors.
    name, model, x, target = net
    layer = ARCHS[name][0]
    first = sc.attribute(model, x, "gradcam", target, layer=layer)
    assert rel_err(first.raw, run_anchor(GradCAM, model, x, target, layer)[0]) <= EXACT
    for method in ("gradcam_pp", "xgradcam", "layercam", "hirescam"):
        a = sc.attribute(model, x, method, target, layer=layer)
        assert a.backward_passes == 0
        assert rel_err(a.raw, run_anchor(METHODS[method], model, x, target, layer)[0]) <= EXACT
    assert hook_count(model) == 0
