"""LRP (zennit composites through the engine's modified backward pass): conservation on bias-free nets,
LRP-epsilon by hand and as gradient x input, a cross-check against zennit's own Gradient attributor on a
canonized ResNet-18, the demo scenes, and the models it refuses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from scipy import ndimage
from torch import nn
from zennit.attribution import Gradient
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.composites import EpsilonGammaBox, EpsilonPlusFlat
from zennit.torchvision import ResNetCanonizer

import saliency_core as sc
from saliency_core.hooks import hook_count
from saliency_core.methods.lrp import COMPOSITES, lrp_rules
from saliency_core.zoo.scenes import make_scene


def _relu_cnn(bias: bool, batch_norm: bool = False) -> nn.Module:
    """Conv-ReLU-maxpool-conv-ReLU-avgpool-linear: only layers zennit has rules (or the gradient) for."""
    torch.manual_seed(0)
    norm = [nn.BatchNorm2d(8)] if batch_norm else []
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=bias),
        *norm,
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1, bias=bias),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4, bias=bias),
    ).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                # Logits of order 1 (not 0.02): the rules' 1e-6 stabilisers then shift sums by ~5e-6.
                m.weight.mul_(3.0)
            if bias and isinstance(m, (nn.Conv2d, nn.Linear)):
                m.bias.uniform_(-0.5, 0.5)
            if isinstance(m, nn.BatchNorm2d):  # non-trivial statistics, so that canonization matters
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model


def _image(size: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same_state(model: nn.Module, before: dict[str, torch.Tensor]) -> bool:
    after = model.state_dict()
    return after.keys() == before.keys() and all(torch.equal(after[k], v) for k, v in before.items())


@pytest.mark.parametrize("composite", COMPOSITES)
def test_relevance_is_conserved_on_a_bias_free_relu_cnn(composite: str) -> None:
    model, x = _relu_cnn(bias=False), _image()
    with torch.no_grad():
        logits = model(x)[0]
    target = int(logits.argmax())
    a = sc.Engine(device="cpu").attribute(model, x, "lrp", target, composite=composite)
    score = float(logits[target])
    # The output is seeded with the score itself (not with 1), so the relevances add up to the logit.
    assert a.extras["relevance_at_output"] == pytest.approx(score, rel=1e-6)
    # Every rule here conserves exactly on a bias-free net; only the 1e-6 stabilisers and float32 sums
    # differ: 1e-4 of the score is far above that and far below what a lost or doubled share would cost.
    assert float(a.raw.sum()) == pytest.approx(score, rel=1e-4)
    assert float(a.map.sum()) == pytest.approx(score, rel=1e-4)  # the map is the channel sum


def test_biases_absorb_relevance_so_a_biased_net_does_not_conserve_it() -> None:
    model, x = _relu_cnn(bias=True), _image()
    target = int(model(x)[0].argmax())
    a = sc.Engine(device="cpu").attribute(model, x, "lrp", target, composite="epsilon_plus_flat")
    # What conservation's test would catch: here the sum is visibly off the score.
    assert abs(a.extras["relevance_at_input"] - a.extras["relevance_at_output"]) > 0.01 * abs(
        a.extras["relevance_at_output"]
    )


def test_lrp_epsilon_by_hand_on_a_two_layer_net() -> None:
    # x = (1, 2); h = ReLU(W1 x + b1), W1 = [[1, 1], [2, -1]], b1 = (0, 0.5): h = (3, 0.5);
    # y = W2 h, W2 = [[2, -1]]: y = 6 - 0.5 = 5.5, the score and the seed R_y.
    # LRP-epsilon, epsilon = 0.5, R_j = sum_k a_j w_jk R_k / (z_k + epsilon sign z_k):
    #   top layer, z = 5.5 -> 6:    R_h1 = 3 * 2 * 5.5 / 6 = 5.5,  R_h2 = 0.5 * (-1) * 5.5 / 6 = -11/24
    #   unit 1, z = 3 -> 3.5:       to x1: 1 * 1 * 5.5 / 3.5 = 11/7,  to x2: 2 * 1 * 5.5 / 3.5 = 22/7
    #   unit 2, z = 0.5 -> 1:       to x1: 1 * 2 * (-11/24) = -11/12, to x2: 2 * (-1) * (-11/24) = 11/12
    #   R_x1 = 11/7 - 11/12 = 55/84,  R_x2 = 22/7 + 11/12 = 341/84 (sum 4.71 < 5.5: bias and epsilon).
    first, second = nn.Linear(2, 2), nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0, 1.0], [2.0, -1.0]]))
        first.bias.copy_(torch.tensor([0.0, 0.5]))
        second.weight.copy_(torch.tensor([[2.0, -1.0]]))
    model = nn.Sequential(nn.Flatten(), first, nn.ReLU(), second).eval()
    x = torch.tensor([1.0, 2.0]).view(1, 1, 1, 2)
    a = sc.Engine(device="cpu").attribute(model, x, "lrp", 0, composite="epsilon", epsilon=0.5)
    assert a.extras["relevance_at_output"] == pytest.approx(5.5)
    # float32 arithmetic on numbers of order 1: 1e-5 is a few ulps of the chain above.
    assert a.raw.flatten().tolist() == pytest.approx([55 / 84, 341 / 84], abs=1e-5)


def test_lrp_epsilon_at_small_epsilon_is_gradient_times_input_after_canonization() -> None:
    # On a ReLU network LRP-0 equals gradient x input exactly (biases included) once each batch norm is
    # merged into its convolution; without that merge the Pass rule would skip the norm's scaling.
    model, x = _relu_cnn(bias=True, batch_norm=True), _image()
    target = 2
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(xg)[0, target], [xg])
    expected = (grad * x)[0]
    a = sc.Engine(device="cpu").attribute(model, x, "lrp", target, composite="epsilon", epsilon=1e-9)
    assert a.extras["canonizers"] == ["SequentialMergeBatchNorm"]
    # 1e-4 of the largest value: the epsilon of 1e-9 and float32 rounding, well under a skipped norm.
    assert float((a.raw - expected).abs().max()) <= 1e-4 * float(expected.abs().max())


def test_epsilon_gamma_box_matches_zennits_own_attributor_on_a_canonized_resnet18() -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    with torch.no_grad():  # random statistics, so that merging the batch norms is not a no-op
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    x, target, eps, gamma = _image(16), 3, 1e-4, 0.5  # 16 px: layer4 still sees a 1x1 map
    before, hooks = _state(model), hook_count(model)
    a = sc.Engine(device="cpu").attribute(
        model, x, "lrp", target, composite="epsilon_gamma_box", epsilon=eps, gamma=gamma
    )
    assert _same_state(model, before) and hook_count(model) == hooks == 0
    assert all(p.grad is None for p in model.parameters())
    assert a.extras["canonizers"] == ["ResNetCanonizer"]
    # A bare module has identity preprocessing: pixels 0 and 255 are the inputs 0 and 1.
    low, high = torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)
    onehot = torch.eye(10)[[target]]

    def oracle(canonizers: list) -> torch.Tensor:
        composite = EpsilonGammaBox(low=low, high=high, epsilon=eps, gamma=gamma, canonizers=canonizers)
        with Gradient(model, composite) as attributor:
            _, relevance = attributor(x.clone(), attr_output=lambda out: out * onehot)
        return relevance[0]

    expected = oracle([ResNetCanonizer()])
    scale = float(expected.abs().max())
    # The same hooks on the same model in the same order: only float32 summation order may differ.
    assert float((a.raw - expected).abs().max()) <= 1e-5 * scale
    # The cross-check can fail: the same composite without canonization gives another map.
    assert float((a.raw - oracle([])).abs().max()) > 1e-2 * scale
    assert _same_state(model, before) and hook_count(model) == 0


def test_a_failing_canonizer_leaves_the_model_as_it_was() -> None:
    # The second merge fails (a 4-channel conv before an 8-channel norm) after the first has changed
    # the first conv: zennit loses that instance, the snapshot puts it back.
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(8))
    with torch.no_grad():
        model[1].running_var.fill_(4.0)
    before = _state(model)
    with (
        pytest.raises(RuntimeError),
        lrp_rules(model, EpsilonPlusFlat(canonizers=[SequentialMergeBatchNorm()]), []),
    ):
        pass
    assert _same_state(model, before) and hook_count(model) == 0


def test_demo_model_relevance_peaks_on_the_object_and_starts_from_the_logit() -> None:
    model = sc.load_model("shapes_demo")
    for seed in (0, 3, 5):
        scene = make_scene(seed)
        x = model.preprocess(scene.image)
        a = sc.attribute(model, x, "lrp", scene.label)
        with torch.no_grad():
            logit = float(model.module(x)[0, scene.label])
        # The seed is the logit of the canonized model: merged batch norms round differently (~2e-5).
        assert a.extras["relevance_at_output"] == pytest.approx(logit, rel=1e-4)
        # The mask filled and dilated by 2 px, as tests/core/test_default_maps.py reads a peak.
        region = ndimage.binary_dilation(ndimage.binary_fill_holes(scene.mask), iterations=2)
        positive = a.map.clamp(min=0).numpy()
        assert region.flat[np.argmax(positive)], f"scene {seed}: peak off the object"
        # Most positive relevance lies on the object, which covers a few percent of the picture.
        assert positive[scene.mask].sum() / positive.sum() > 2 * scene.mask.mean()


def test_segmentation_toy_is_explained_and_detection_is_not_offered() -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from task_models import ToyDetector, ToySegmenter, scene, toy_model

    engine, box = sc.Engine(device="cpu"), (8, 8, 24, 24)
    seg = toy_model(engine, ToySegmenter(box), "segmentation", ("background", "thing", "other"))
    a = engine.attribute(seg, scene(32, box), "lrp", sc.ClassTarget(1))
    positive = a.map.clamp(min=0)
    assert float(positive[8:24, 8:24].sum()) >= 0.9 * float(positive.sum())
    det = toy_model(engine, ToyDetector(box, (0, 0, 8, 8)), "detection", ("bg", "thing", "decoy"))
    assert "lrp" not in {m.id for m in sc.list_methods(model=det)}


def test_transformers_and_hidden_functional_ops_are_refused_with_the_reason() -> None:
    engine = sc.Engine(device="cpu")
    vit = torchvision.models.VisionTransformer(
        image_size=32, patch_size=16, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32, num_classes=3
    ).eval()
    with pytest.raises(sc.InvalidParameter, match="attention"):
        engine.attribute(vit, _image(32), "lrp", 0)
    gated = nn.Sequential(
        nn.Conv2d(3, 8, 3), torchvision.ops.SqueezeExcitation(8, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    pre_norm = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    for module, reason in ((gated, "squeeze-and-excitation"), (pre_norm, "batch norms come before")):
        loaded = engine.resolve(module.eval())
        assert "lrp" not in {m.id for m in sc.list_methods(model=loaded)}
        with pytest.raises(sc.InvalidParameter, match=reason):
            engine.attribute(loaded, _image(32), "lrp", 0)
    assert "lrp" in {m.id for m in sc.list_methods(model=engine.resolve(_relu_cnn(bias=True)))}
