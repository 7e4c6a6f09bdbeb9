"""Exact incremental occlusion: outputs equal the model on the occluded batch, regions are the ones worked out
by hand, and what the rectangles cannot express falls back, exactly, to dense passes."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import saliency_core as sc
from saliency_core.methods.incremental import IncrementalPlan, plan


def occluded(x: torch.Tensor, starts: list[tuple[int, int]], patch: int, base: torch.Tensor) -> torch.Tensor:
    """Plain occlusion's batch: the slice assignment clips windows that hang over the edge."""
    batch = x.repeat(len(starts), 1, 1, 1)
    for j, (y, xx) in enumerate(starts):
        batch[j, :, y : y + patch, xx : xx + patch] = base[0, :, y : y + patch, xx : xx + patch]
    return batch


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).norm() / b.norm().clamp(min=1e-12))


def random_bn(model: nn.Module) -> nn.Module:
    """Running statistics far from (0, 1), so a wrongly applied (or skipped) BatchNorm shows."""
    g = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.weight.shape, generator=g) * 0.5 + 1)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model.eval()


def check(
    model: nn.Module, x: torch.Tensor, cases: list[tuple[int, list[tuple[int, int]]]]
) -> IncrementalPlan:
    p = plan(model, x)
    assert isinstance(p, IncrementalPlan), p
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        ref = model(x)
    changes = []
    for i, (patch, starts) in enumerate(cases):
        base = torch.zeros_like(x) if i % 2 == 0 else torch.randn(x.shape, generator=g)
        got = p.outputs(starts, patch, base)
        with torch.no_grad():
            want = model(occluded(x, starts, patch, base))
        assert got.shape == want.shape
        assert rel(got, want) < 1e-4, (patch, starts)
        change = rel(want, ref.expand_as(want))
        if change > 1e-3:  # the error is small against what the occlusion changed, too
            assert rel(got - ref, want - ref) < 1e-2, (patch, starts)
        changes.append(change)
    assert max(changes) > 1e-2  # the windows really changed the outputs: the check can fail
    return p


def windows(size: int) -> list[tuple[int, list[tuple[int, int]]]]:
    """Corners, edges, windows hanging over the bottom / right, one wholly outside (stride > patch grids
    make those), patches larger than early receptive fields, and the whole image."""
    s = size
    return [
        (8, [(0, 0), (s - 8, s - 8), (3, s - 5), (s - 3, 11), (17, 29)]),
        (16, [(0, s - 16), (s - 10, 0), (8, 8), (s - 1, s - 1), (s, 4)]),
        (40, [(0, 0), (s - 40, 20), (s - 20, s - 20)]),
        (1, [(0, 0), (s // 2, s // 3)]),
        (s, [(0, 0)]),
    ]


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("resnet18", 64),
        pytest.param("vgg16", 64, marks=pytest.mark.slow),
        pytest.param("mobilenet_v3_small", 96, marks=pytest.mark.slow),
    ],
    ids=str,
)
def test_torchvision_models_match_the_occluded_batch(name: str, size: int) -> None:
    torch.manual_seed(0)
    model = random_bn(getattr(torchvision.models, name)(weights=None, num_classes=10))
    if name == "mobilenet_v3_small":  # random-init logits barely move; the early blocks (SE included) do
        model = model.features[:4]
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    p = check(model, x, windows(size))
    if name == "mobilenet_v3_small":  # squeeze-excitation pools the whole map: dense from there, and said so
        assert "avgpool" in p.reason
    else:
        assert p.reason == ""


@pytest.mark.slow
def test_resnet_recomputes_only_what_the_window_reaches() -> None:
    """The speed-up itself: at 224 px a 16-px window touches a small part of layer1 and less than all
    of layer3's first block (14x14 maps), and layer4 (7x7) whole."""
    torch.manual_seed(0)
    model = random_bn(torchvision.models.resnet18(weights=None, num_classes=10))
    x = torch.randn(1, 3, 224, 224)
    p = plan(model, x)
    assert isinstance(p, IncrementalPlan)
    starts = [(0, 0), (104, 96), (208, 208)]
    got = p.outputs(starts, 16, torch.zeros_like(x))
    with torch.no_grad():
        assert rel(got, model(occluded(x, starts, 16, torch.zeros_like(x)))) < 1e-4
    regions = p.last_regions
    assert regions["conv1"] is not None and regions["conv1"][1] == (11, 11)  # (16 + 7 - 1) / 2 rounded
    assert regions["layer1_1_conv2"] is not None and regions["layer1_1_conv2"][1] == (15, 15)  # 56 px map
    assert regions["layer3_0_conv2"] is not None and max(regions["layer3_0_conv2"][1]) < 14
    assert regions["layer4_1_conv2"] is None  # dense: the whole 7x7 map changes


def test_demo_model_matches_the_occluded_batch() -> None:
    model = sc.load_model("shapes_demo").module
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(2))
    p = check(model, x, windows(96))
    assert p.reason == ""


def test_hand_worked_regions_conv_then_maxpool() -> None:
    """8x8 input, conv 3x3 pad 1, max-pool 2. Window (2, 3) 2x2: conv rows 1..4, cols 2..5; pool rows
    0..2, cols 1..2. Window (7, 7), hanging over: clipped to the input's rows 6..7 (start 6 shares the size
    2); conv rows 5..7 widened to the common 4 -> start 4; pool rows 2..3 widened to 3 -> start 1."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.MaxPool2d(2)).eval()
    x = torch.randn(1, 2, 8, 8)
    p = plan(model, x)
    assert isinstance(p, IncrementalPlan)
    base = torch.zeros_like(x)
    got = p.outputs([(2, 3)], 2, base)
    assert p.last_regions["_0"] is not None and p.last_regions["_1"] is not None
    assert p.last_regions["_0"][0].tolist() == [[1, 2]] and p.last_regions["_0"][1] == (4, 4)
    assert p.last_regions["_1"][0].tolist() == [[0, 1]] and p.last_regions["_1"][1] == (3, 2)
    assert rel(got, model(occluded(x, [(2, 3)], 2, base))) < 1e-5
    got = p.outputs([(2, 3), (7, 7)], 2, base)
    assert p.last_regions["_0"][0].tolist() == [[1, 2], [4, 4]] and p.last_regions["_0"][1] == (4, 4)
    assert p.last_regions["_1"][0].tolist() == [[0, 1], [1, 2]] and p.last_regions["_1"][1] == (3, 2)
    assert rel(got, model(occluded(x, [(2, 3), (7, 7)], 2, base))) < 1e-5


class Branches(nn.Module):
    """Ops the torchvision models do not cover: strides above the kernel, dilation, groups, ceil-mode
    max pooling, average pooling with counted padding, a channel concat, sub / mul and an in-place add."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, stride=2, padding=2, dilation=2)
        self.b = nn.Conv2d(3, 8, 1, stride=4)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        self.avg = nn.AvgPool2d(3, stride=1, padding=1)
        self.g = nn.Conv2d(24, 16, 5, padding=1, groups=4, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.head = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.relu(self.pool(self.a(x)))
        y = torch.cat([a, self.b(x), self.avg(a) - a * 0.5], dim=1)  # 1x1 stride 4 skips pixels
        y = self.bn(self.g(y))
        y += 1.0
        return self.head(y.mean(dim=(2, 3)))


def test_other_ops_match_and_unsupported_ones_fall_back_exactly() -> None:
    torch.manual_seed(0)
    model = random_bn(Branches())
    x = torch.randn(1, 3, 45, 45)
    p = check(model, x, windows(45))
    p.outputs([(3, 3)], 4, torch.zeros_like(x))
    assert p.last_regions["g"] is not None  # the grouped conv ran on rectangles
    assert p.last_regions["cat"] is not None and p.last_regions["pool"] is not None
    assert p.reason == ""  # by the global mean, the self-check's window has reached the whole map


class Centre(nn.Module):
    """A custom module mixing the whole map (x - its mean): torch.fx traces into it; it must go dense."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - x.mean(dim=(2, 3), keepdim=True)


def test_custom_global_op_falls_back_with_a_reason() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), Centre(), nn.Conv2d(4, 4, 3), nn.Flatten(), nn.LazyLinear(3)
    )
    x = torch.randn(1, 3, 20, 20)
    model(x)
    p = check(model.eval(), x, windows(20)[:3])
    assert "mean" in p.reason and "Recomputed in full" in p.reason


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y if y.sum() > 0 else -y


def test_untraceable_model_gives_a_reason() -> None:
    p = plan(DataDependent().eval(), torch.randn(1, 3, 16, 16))
    assert isinstance(p, str) and "traced" in p
    assert isinstance(plan(DataDependent().eval(), torch.randn(2, 3, 16, 16)), str)  # one image only


def test_projective_field_cap_keeps_the_unoccluded_values_beyond_it() -> None:
    """cap 0.5 on 3x3 convs over a 16x16 map: a 2x2 window at (6, 6) reaches rows 5..8 after conv 1 (4 rows,
    within 8), 4..9 after conv 2 (6), 3..10 after conv 3 (8, the cap) and 2..11 after conv 4, cut to its
    middle 8: rows 3..10. The reference recomputes each layer densely, then puts back the unoccluded
    activation outside those rectangles; uncapped (cap 1) the outputs are plain occlusion's."""
    torch.manual_seed(0)
    layers = [nn.Conv2d(2 if i == 0 else 3, 3, 3, padding=1) for i in range(4)]
    model = nn.Sequential(*[m for conv in layers for m in (conv, nn.ReLU())]).eval()
    x = torch.randn(1, 2, 16, 16)
    base = torch.randn(x.shape)
    p = plan(model, x)
    assert isinstance(p, IncrementalPlan)
    p.cap = 0.5
    got = p.outputs([(6, 6)], 2, base)
    spans = [(5, 8), (4, 9), (3, 10), (3, 10)]
    assert [p.last_regions[f"_{2 * i}"][0].tolist() for i in range(4)] == [[[a, a]] for a, _ in spans]
    with torch.no_grad():
        want, clean = occluded(x, [(6, 6)], 2, base), x
        for conv, (a, b) in zip(layers, spans):
            want, clean = torch.relu(conv(want)), torch.relu(conv(clean))
            inside = torch.zeros_like(want, dtype=torch.bool)
            inside[..., a : b + 1, a : b + 1] = True
            want = torch.where(inside, want, clean)
        exact = model(occluded(x, [(6, 6)], 2, base))
    assert rel(got, want) < 1e-5
    assert rel(got, exact) > 1e-3  # the cap really dropped a change: the check can fail
    p.cap = 1.0
    assert rel(p.outputs([(6, 6)], 2, base), exact) < 1e-5
