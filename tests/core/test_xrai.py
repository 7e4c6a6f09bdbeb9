"""XRAI against PAIR's `saliency.core.XRAI` (the oracle) and on toys that see only one rectangle.

Tolerances. Segments and the greedy selection given the same IG map and segments are compared exactly
(bit for bit: the same elements are averaged in the same order). The IG map differs from PAIR's only by
float32 rounding (gradients batched and summed in another order): relative L2 error <= 1e-4, as the captum
cross-checks. The final maps then agree to 1e-4 of the IG map's scale provided the same regions are picked
in the same order: a rounding-level difference could only swap two regions whose gains tie to ~1e-7, which
this seeded network and picture do not have (the regions' order is checked exactly as well).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from known_models import one_torch_thread
from saliency.core import INPUT_OUTPUT_GRADIENTS, XRAI, XRAIParameters
from saliency.core import xrai as pair_xrai
from task_models import ToyDetector, ToyPoseDetector, ToySegmenter, scene, toy_model
from torch import nn

import saliency_core as sc
from saliency_core.methods import get_method
from saliency_core.methods import xrai as ours
from saliency_core.methods.base import CostInfo

SIZE = 64
EXACT = 1e-4
STEPS = 6


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with one_torch_thread():
        yield


def picture(size: int = SIZE) -> np.ndarray:
    """A seeded uint8 picture of coloured rectangles and a disc on a gradient, with mild noise."""
    rng = np.random.RandomState(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.stack([0.2 + 0.3 * xx, 0.3 + 0.2 * yy, 0.4 + 0.0 * xx], axis=-1)
    img[8:30, 6:28] = (0.9, 0.2, 0.1)
    img[36:58, 30:60] = (0.1, 0.7, 0.3)
    img[((yy - 0.3) ** 2 + (xx - 0.7) ** 2) < 0.02] = (0.95, 0.9, 0.2)
    img = img + rng.normal(0, 0.03, img.shape)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 5, padding=2),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(128, 5),
    ).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def as_masks(regions: list[ours.Region], shape: tuple[int, int]) -> list[np.ndarray]:
    out = []
    for r in regions:
        full = np.zeros(shape, bool)
        full[r.rows, r.cols] = r.mask
        out.append(full)
    return out


def test_segments_are_pairs_exactly() -> None:
    img = picture()
    for radius in (5, 0):
        theirs = pair_xrai._get_segments_felzenszwalb(img, dilation_rad=radius)
        mine = as_masks(ours.segment(img, radius), img.shape[:2])
        assert len(mine) == len(theirs) > 20
        assert all(np.array_equal(a, b) for a, b in zip(mine, theirs)), radius


def test_greedy_selection_is_pairs_exactly() -> None:
    img = picture()
    segs = pair_xrai._get_segments_felzenszwalb(img)
    regions = ours.regions_from_masks(segs)
    attr = np.random.RandomState(1).randn(SIZE, SIZE).astype(np.float32)
    attr[:20] = 0.0  # exact ties (a blind area): the first region in PAIR's order must win
    for threshold in (1.0, 0.3):
        theirs, _ = pair_xrai.XRAI._xrai(attr, segs, area_perc_th=threshold)
        mine, added = ours.select_full(attr, regions, threshold)
        assert np.array_equal(mine, theirs), threshold
        assert 1 < added < len(segs)
    theirs, _ = pair_xrai.XRAI._xrai_fast(attr, segs)
    mine, _ = ours.select_fast(attr, regions)
    assert np.array_equal(mine, theirs)
    # Each pixel gets the mean attribution of the pixels its region added: the sums agree.
    assert mine.sum() == pytest.approx(float(attr.astype(np.float64).sum()), rel=1e-4, abs=1e-3)


def pair_model_function(net: nn.Module, target: int):
    def call(batch, call_model_args=None, expected_keys=None):
        x = torch.tensor(batch, dtype=torch.float32).permute(0, 3, 1, 2).requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(net(x)[:, target].sum(), [x])
        return {INPUT_OUTPUT_GRADIENTS: grad.permute(0, 2, 3, 1).numpy()}

    return call


@pytest.fixture
def spy(monkeypatch):
    """Records the IG map and regions XRAI hands to its selection."""
    seen: dict = {}
    original = ours.select_regions

    def recording(attr, regions, algorithm, area_threshold, step=None):
        seen.update(attr=attr.copy(), regions=regions, algorithm=algorithm)
        return original(attr, regions, algorithm, area_threshold, step)

    monkeypatch.setattr(ours, "select_regions", recording)
    return seen


@pytest.mark.parametrize("algorithm", ["full", "fast"])
def test_matches_pair_getmask_on_a_random_cnn(spy, algorithm) -> None:
    net, img = small_cnn(), picture()
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        target = int(net(x).argmax())
    a = sc.attribute(
        net, x, "xrai", target, use_cache=False, steps=STEPS, rule=ours.PAIR_RULE, algorithm=algorithm
    )
    hwc = x[0].permute(1, 2, 0).numpy()
    segs = pair_xrai._get_segments_felzenszwalb(img)  # PAIR's segments of the same picture
    params = XRAIParameters(steps=STEPS, return_ig_attributions=True, algorithm=algorithm)
    details = XRAI().GetMaskWithDetails(
        hwc,
        pair_model_function(net, target),
        baselines=params_baselines(hwc),
        segments=segs,
        batch_size=STEPS,
        extra_parameters=params,
    )
    # The IG part: mean over the two baselines, then the channels' maximum.
    their_ig = np.mean(details.ig_attribution, axis=0).max(axis=-1)
    err = np.linalg.norm(spy["attr"] - their_ig) / np.linalg.norm(their_ig)
    assert err <= EXACT, err
    assert all(np.array_equal(m, s) for m, s in zip(as_masks(spy["regions"], img.shape[:2]), segs))
    assert len(spy["regions"]) == len(segs)
    theirs = details.attribution_mask
    mine = a.map.double().numpy()
    # The same regions in the same order: equal level sets, ranked alike.
    assert np.array_equal(_ranks(mine), _ranks(theirs))
    scale = np.abs(their_ig).max()
    assert np.abs(mine - theirs).max() <= EXACT * scale
    assert a.extras["regions"] >= 2 and a.extras["segments"] == len(segs)
    if algorithm == "full":
        # PAIR segmenting its own input (in [0, 1]) instead of the uint8 picture: the same map here.
        own = XRAI().GetMask(
            hwc,
            pair_model_function(net, target),
            baselines=params_baselines(hwc),
            batch_size=STEPS,
            extra_parameters=XRAIParameters(steps=STEPS),
        )
        assert np.abs(mine - own).max() <= EXACT * scale


def params_baselines(hwc: np.ndarray) -> list[np.ndarray]:
    """The black and white pictures (identity preprocessing: all zeros and all ones)."""
    return [np.zeros_like(hwc), np.ones_like(hwc)]


def _ranks(m: np.ndarray) -> np.ndarray:
    """Each pixel's place among the map's distinct values (its region's rank; equal gains share one)."""
    values = np.unique(m)
    return np.searchsorted(values, m)


def test_cost_formula_is_exact() -> None:
    net, img = small_cnn(), picture(32)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
    spec = get_method("xrai")
    for given in ({"steps": 3}, {"steps": 2, "baselines": "blur"}, {"steps": 4, "baselines": "black"}):
        a = sc.attribute(net, x, "xrai", 0, use_cache=False, batch_size=3, **given)
        params = spec.resolve(given, [])
        assert (a.forward_passes, a.backward_passes) == tuple(spec.cost(params, CostInfo((32, 32))))
    params = spec.resolve({}, [])
    assert tuple(spec.cost(params, CostInfo())) == (2 * params["steps"], 2 * params["steps"])


# --- toys that see one rectangle -------------------------------------------------------------------
TOY = 96
BOX = (32, 24, 80, 72)


def _toys():
    engine = sc.Engine(device="cpu")
    return engine, {
        "detection": (
            toy_model(engine, ToyDetector(BOX, (0, 0, 20, 20)), "detection", ("bg", "a", "b")),
            sc.BoxTarget((33, 25, 79, 70), 1),
        ),
        "keypoints": (
            toy_model(engine, ToyPoseDetector(BOX), "keypoints", ("none", "person")),
            sc.KeypointTarget((33, 25, 79, 70), "left_wrist"),
        ),
        "segmentation": (
            toy_model(engine, ToySegmenter(BOX), "segmentation", ("bg", "a", "b")),
            sc.ClassTarget(1),
        ),
        "salient_object": (
            toy_model(engine, ToySegmenter(BOX, channels=1), "salient_object", ("s",)),
            sc.MaskTarget(),
        ),
    }


@pytest.mark.parametrize("task", ["detection", "keypoints", "segmentation", "salient_object"])
def test_first_regions_lie_in_the_only_rectangle_the_model_sees(spy, task) -> None:
    engine, toys = _toys()
    model, target = toys[task]
    radius = 3
    a = engine.attribute(model, scene(TOY, BOX), "xrai", target, steps=4, dilation=radius, use_cache=False)
    m = a.map.numpy()
    assert np.isfinite(m).all()  # every pixel got a region (the map covers the image)
    x0, y0, x1, y1 = BOX
    grown = np.zeros(m.shape, bool)
    grown[y0 - radius : y1 + radius, x0 - radius : x1 + radius] = True
    # The model is blind outside the box: IG is exactly zero there.
    assert not spy["attr"][~grown].any()
    top = m == m.max()
    assert m.max() > 0 and grown[top].all(), task  # the first region lies in the (dilated) box
    # The regions ranked above every blind one are all in the box; outside it the map is zero.
    assert (m[~grown] <= 0).all() and (m[~grown] == 0).mean() > 0.9
    # Each region's pixels carry their mean attribution: the map's sum is the IG map's.
    assert m.sum() == pytest.approx(float(spy["attr"].sum()), rel=1e-4)
