"""Ablation-CAM and FullGrad: cross-checks against pytorch-grad-cam, known answers on hand-built models,
FullGrad's completeness, the task toys, exact costs and no hook left.

Cross-checks run on the seeded random-init ResNet-18 of known_models.random_classifier (64 px) and a small
hand-built CNN, with ClassifierOutputTarget on the predicted class (positive logits, so dividing by the
score and by its magnitude agree). What is compared is what both define the same way:
- Ablation-CAM: the anchor's own `get_cam_image` (its weights times its activations, before ReLU) against
  our `raw` (relative L2 error <= 1e-4: float32 sums of 512 terms in a different order), and its
  end-to-end output (ReLU at the layer, min-max, resize, min-max) against that pipeline applied to our raw
  (max difference <= 1e-4 on [0, 1] maps; measured ~2e-6). Both ablate with zero: the layers chosen
  follow a ReLU, where the anchor zeroes too (elsewhere it uses min - 1e7).
- FullGrad: the anchor's sum of post-processed terms before its final min-max against our raw (relative
  L2 <= 1e-4) and its output against min-max(our map) (max difference <= 1e-4; measured ~2e-6). Random
  init leaves batch norms with mean 0, variance 1, gamma 1, beta 0, i.e. no effective bias, so the test
  networks get random batch-norm statistics and affine parameters first: otherwise only the input term
  would be checked.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from known_models import SpatialHead, TinyCam, one_torch_thread, random_classifier
from pytorch_grad_cam import AblationCAM, FullGrad
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from task_models import ToyDetector, ToyPoseDetector, ToySegmenter, scene, toy_model
from torch import nn

import saliency_core as sc
from saliency_core.hooks import hook_count
from saliency_core.methods import get_method
from saliency_core.methods.cam_more import bias_layers, channel_index, effective_bias
from saliency_core.models.layers import to_grid

SIZE = 64
EXACT = 1e-4


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with one_torch_thread():
        yield


def rel_err(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    ours = torch.as_tensor(ours).detach().double().reshape(theirs.shape)
    theirs = torch.as_tensor(theirs).detach().double()
    return float((ours - theirs).norm() / theirs.norm())


def minmax(m: torch.Tensor) -> torch.Tensor:
    m = m - m.min()
    return m / (m.max() + 1e-7)


def upsample(m: torch.Tensor) -> torch.Tensor:
    return F.interpolate(m[None, None].float(), size=(SIZE, SIZE), mode="bilinear", align_corners=False)[0, 0]


def randomise_batch_norms(model: nn.Module, seed: int = 5) -> nn.Module:
    """Batch norms with random running statistics and affine parameters: a non-zero effective bias."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in model.modules():
            if isinstance(bn, nn.BatchNorm2d):
                bn.weight.copy_(1 + 0.3 * torch.randn(bn.weight.shape, generator=g))
                bn.bias.copy_(0.2 * torch.randn(bn.bias.shape, generator=g))
                bn.running_mean.copy_(0.2 * torch.randn(bn.running_mean.shape, generator=g))
                bn.running_var.copy_(1 + 0.5 * torch.rand(bn.running_var.shape, generator=g))
    return model


def small_cnn() -> nn.Module:
    """Convolutions with and without biases, batch norms (one before an in-place ReLU), max pooling."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 5),
    )
    with torch.no_grad():
        net[-1].bias.fill_(1.0)  # positive logits: the anchor divides by the score, ours by its magnitude
    return randomise_batch_norms(net.eval())


# name -> (model, input, predicted class, Ablation-CAM layer)
@pytest.fixture(scope="module", params=["resnet18", "small_cnn"])
def net(request):
    if request.param == "resnet18":
        model, x, target = random_classifier("resnet18", SIZE)
        randomise_batch_norms(model)
        layer = "layer4"  # 2x2x512 at 64 px, after the block's ReLU
    else:
        model, layer = small_cnn(), "5"  # 32x32x16, a ReLU's output
        x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(x)
    target = int(logits.argmax())
    assert float(logits[0, target]) > 0
    return model, x, target, layer


class RecordingAblation(AblationCAM):
    def get_cam_image(self, input_tensor, target_layer, targets, activations, grads, eigen_smooth):
        cam = super().get_cam_image(input_tensor, target_layer, targets, activations, grads, eigen_smooth)
        self.recorded = np.array(cam)
        return cam


class RecordingFullGrad(FullGrad):
    def compute_cam_per_layer(self, input_tensor, target_category, eigen_smooth):
        cam = super().compute_cam_per_layer(input_tensor, target_category, eigen_smooth)
        self.recorded = np.array(cam)
        return cam


def test_ablation_cam_matches_pytorch_grad_cam(net) -> None:
    model, x, target, layer = net
    with RecordingAblation(model, [model.get_submodule(layer)], batch_size=64) as cam:
        out = cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])
        theirs_raw = torch.from_numpy(cam.recorded[0])
    theirs_out = torch.from_numpy(out[0])
    assert hook_count(model) == 0
    a = sc.attribute(model, x, "ablation_cam", target, layer=layer, use_cache=False)
    assert a.raw.shape == theirs_raw.shape and a.map.shape == (SIZE, SIZE)
    assert rel_err(a.raw, theirs_raw) <= EXACT
    assert float((minmax(upsample(minmax(a.raw.clamp(min=0)))) - theirs_out).abs().max()) <= EXACT
    assert torch.allclose(a.map, upsample(a.raw))
    assert hook_count(model) == 0


def test_fullgrad_matches_pytorch_grad_cam(net) -> None:
    model, x, target, _ = net
    try:
        with RecordingFullGrad(model, []) as cam:
            out = cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])
            theirs_raw = torch.from_numpy(cam.recorded[0, 0])
    finally:
        model.zero_grad(set_to_none=True)  # the anchor calls backward(), which writes param.grad
    assert hook_count(model) == 0
    a = sc.attribute(model, x, "fullgrad", target, use_cache=False)
    assert a.extras["bias_layers"] == len(bias_layers(model)) > 0
    assert a.raw.shape == a.map.shape == (SIZE, SIZE)
    assert rel_err(a.raw, theirs_raw) <= EXACT
    assert float((minmax(a.map) - torch.from_numpy(out[0])).abs().max()) <= EXACT
    assert (a.forward_passes, a.backward_passes) == (1, 1)
    assert hook_count(model) == 0


def test_fullgrad_terms_are_complete_on_a_piecewise_linear_network() -> None:
    # For ReLU networks with eval batch norms, f(x) = grad . x + sum over bias layers of grad . bias
    # + the linear head's bias (the paper's completeness): it holds only if bias_layers finds every
    # convolution / batch-norm bias and effective_bias is the batch norm's true constant.
    model, x, target = random_classifier("resnet18", SIZE)
    randomise_batch_norms(model)
    outputs = {}

    def keep(name: str):
        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
            outputs[name] = output
            return output.clone()  # the in-place ReLU after a batch norm must not overwrite it

        return hook

    handles = [m.register_forward_hook(keep(n)) for n, m in bias_layers(model)]
    try:
        xg = x.clone().requires_grad_(True)
        score = model(xg)[0, target]
        names = list(outputs)
        grads = torch.autograd.grad(score, [xg] + [outputs[n] for n in names])
    finally:
        for h in handles:
            h.remove()
    layers = dict(model.named_modules())
    total = (grads[0] * x).sum() + model.fc.bias[target]
    for name, grad in zip(names, grads[1:]):
        total = total + (grad[0] * effective_bias(layers[name])[:, None, None]).sum()
    total, score = float(total.detach()), float(score.detach())
    assert abs(total - score) <= 1e-4 * abs(score) + 1e-5  # float32 sums over ~5000 channels


def test_ablation_cam_of_a_pooled_linear_head_is_known() -> None:
    # TinyCam: logit_c = sum_k w[c, k] mean(A_k) + b, so zeroing channel k drops the logit by
    # w[c, k] mean(A_k): alpha_k = w[c, k] mean(A_k) / |logit|. That is CAM (weights w[c, k]) only up to
    # each channel's mean; with equal channel means it is CAM times mean / |logit|.
    head = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.2, 2.0]])
    model = TinyCam(head).eval()
    x = torch.rand(1, 3, 6, 6, generator=torch.Generator().manual_seed(0)) - 0.2
    engine = sc.Engine(device="cpu")
    for c in range(2):
        a = engine.attribute(model, x, "ablation_cam", c, layer="features")
        acts = x[0].clamp(min=0)
        means = acts.mean(dim=(1, 2))
        logit = float(model(x)[0, c].detach())
        expected = ((head[c] * means)[:, None, None] * acts).sum(0) / abs(logit)
        assert torch.allclose(a.raw, expected, atol=1e-6), c
        assert a.extras["score"] == pytest.approx(logit, rel=1e-6)
    # Channels with the same mean (spatial rolls of one pattern): Ablation-CAM = CAM x mean / |logit|.
    pattern = torch.rand(6, 6, generator=torch.Generator().manual_seed(1))
    same = torch.stack([pattern.roll(s, dims=1) for s in range(3)])[None]
    a = engine.attribute(model, same, "ablation_cam", 1, layer="features")
    cam = engine.attribute(model, same, "cam", 1, layer="features")
    scale = float(pattern.mean()) / abs(float(model(same)[0, 1].detach()))
    assert torch.allclose(a.raw, cam.raw * scale, atol=1e-6)


def test_ablation_cam_with_negative_activations_and_a_negative_score() -> None:
    # SpatialHead: logit = sum V * A with A = x (no ReLU): zeroing channel k drops it by sum_ij V_k x_k,
    # negative activations included; the weight divides by |logit|, so a negative logit keeps the signs.
    v = torch.tensor([[[1.0, -1.0], [0.5, 2.0]], [[-3.0, 0.0], [1.0, -0.5]]])
    x = torch.tensor([[[[0.5, -1.0], [2.0, -0.5]], [[1.5, 0.5], [-1.0, 0.25]]]])
    model = SpatialHead(v).eval()
    logit = float((v * x[0]).sum())
    assert logit < 0
    a = sc.Engine(device="cpu").attribute(model, x, "ablation_cam", 0, layer="features")
    weights = (v * x[0]).sum(dim=(1, 2)) / abs(logit)
    assert torch.allclose(a.raw, (weights[:, None, None] * x[0]).sum(0), atol=1e-6)


def test_the_batch_split_never_changes_the_ablation_map() -> None:
    model = small_cnn()
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    maps = [
        sc.Engine(device="cpu").attribute(model, x, "ablation_cam", 1, layer="5", batch_size=b).raw
        for b in (1, 5, 64)
    ]
    assert torch.allclose(maps[0], maps[1], atol=1e-5) and torch.allclose(maps[0], maps[2], atol=1e-5)
    assert hook_count(model) == 0


def test_token_layers_ablate_the_embedding_dimension_but_not_the_class_token() -> None:
    tokens = torch.arange(1 * 5 * 3, dtype=torch.float32).reshape(1, 5, 3)  # class token + 2x2 patches
    index = channel_index((1, 5, 3), to_grid, 3).reshape(5, 3)
    assert (index[0] == -1).all()  # the class token belongs to no channel
    assert torch.equal(index[1:], torch.arange(3).expand(4, 3))
    grid = to_grid(tokens)
    for k in range(3):  # the elements labelled k are exactly channel k of the grid
        assert torch.equal(tokens[0].flatten()[index.flatten() == k], grid[0, k].flatten())


def test_estimates_are_exact(resnet, image) -> None:
    for method, params, expected in (
        ("ablation_cam", {"layer": "layer1"}, (66, 0)),  # 64 channels + the reference + the activations
        ("ablation_cam", {"layer": "layer4"}, (514, 0)),
        ("fullgrad", {}, (1, 1)),
    ):
        estimate = sc.Engine(device="cpu").estimate(resnet, method, params, x=image)
        a = sc.Engine(device="cpu").attribute(resnet, image, method, 3, **params)
        assert (estimate.forward_passes, estimate.backward_passes) == expected, method
        assert (a.forward_passes, a.backward_passes) == expected, method
    assert hook_count(resnet) == 0


def test_no_hook_left_when_the_target_fails(resnet, image) -> None:
    class Boom(RuntimeError):
        pass

    class BadTarget(sc.ClassTarget):
        calls = 0
        fail_from = 1

        def __call__(self, output):  # type: ignore[override]
            BadTarget.calls += 1
            if BadTarget.calls >= BadTarget.fail_from:
                raise Boom("target failed")
            return super().__call__(output)

    # Ablation-CAM: the first scored batch succeeds, the second fails with the ablation hook in place.
    # FullGrad: its one gradient pass fails with every bias layer hooked.
    for method, fail_from in (("ablation_cam", 2), ("fullgrad", 1)):
        BadTarget.calls, BadTarget.fail_from = 0, fail_from
        with pytest.raises(Boom):
            sc.Engine(device="cpu").attribute(resnet, image, method, BadTarget(3), use_cache=False)
        assert BadTarget.calls == fail_from, method
        assert hook_count(resnet) == 0
        assert all(p.grad is None for p in resnet.parameters())


def test_fullgrad_says_where_it_does_not_apply() -> None:
    engine = sc.Engine(device="cpu")
    assert get_method("fullgrad").unsupported(engine.wrap(small_cnn())) == ""
    plain = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    reason = get_method("fullgrad").unsupported(engine.wrap(plain))
    assert "bias" in reason
    vit = torchvision.models.VisionTransformer(
        image_size=32, patch_size=16, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=8
    ).eval()
    assert "transformer" in get_method("fullgrad").unsupported(engine.wrap(vit))
    assert "fullgrad" not in {m.id for m in sc.list_methods(model=engine.wrap(vit))}
    assert "ablation_cam" in {m.id for m in sc.list_methods(model=engine.wrap(plain))}


BOX = (32, 24, 80, 72)


@pytest.mark.parametrize("task", ["detection", "keypoints", "segmentation", "salient_object"])
@pytest.mark.parametrize("method", ["ablation_cam", "fullgrad"])
def test_task_toys_get_maps_inside_the_only_region_they_see(task: str, method: str) -> None:
    engine = sc.Engine(device="cpu")
    module, categories, target = {
        "detection": (ToyDetector(BOX, (0, 0, 20, 20)), ("bg", "thing", "decoy"), sc.BoxTarget(BOX, 1)),
        "keypoints": (ToyPoseDetector(BOX), ("no person", "person"), sc.KeypointTarget(BOX, "left_wrist")),
        "segmentation": (ToySegmenter(BOX), ("bg", "thing", "other"), sc.ClassTarget(1)),
        "salient_object": (ToySegmenter(BOX, channels=1), ("salient",), sc.MaskTarget()),
    }[task]
    model = toy_model(engine, module, task, categories)
    assert method in {m.id for m in sc.list_methods(model=model)}
    a = engine.attribute(model, scene(96, BOX), method, target)
    positive = a.map.clamp(min=0)
    x0, y0, x1, y1 = BOX
    assert torch.isfinite(a.map).all() and positive.sum() > 0
    assert float(positive[y0:y1, x0:x1].sum() / positive.sum()) > 0.95, task
    assert hook_count(module) == 0
