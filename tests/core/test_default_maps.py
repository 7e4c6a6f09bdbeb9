"""Default maps on the demo model look like their papers: the maximum of every method that declares
`localises` lies on the recognised object of each bundled scene; SmoothGrad has no border band; RISE's
map is relative to its mean masked score.

Parameters are the ones the UI uses (`sc.method_defaults`, then the schema's defaults; the model's first
suggested layer). The mask is the target's, with holes filled (the ring's hole is smaller than one 16-px
cell of a CAM, so a coarse map's peak in it is on the object) and dilated by 2 px (anti-aliased edges).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from scipy import ndimage

import saliency_core as sc

MODEL = "shapes_demo"
BORDER = 8  # rows of the bottom band that SmoothGrad at 15% noise lights up


@functools.cache
def _model() -> sc.LoadedModel:
    return sc.load_model(MODEL)


@functools.cache
def _scenes() -> tuple[tuple[str, torch.Tensor, int, np.ndarray, np.ndarray], ...]:
    """(id, input, class index, mask, the mask filled and dilated by 2 px) of each bundled scene."""
    model = _model()
    names = model.categories
    out = []
    for s in sc.list_samples():
        if s.kind != "synthetic" or s.suggested_model != MODEL:
            continue
        mask = s.mask()
        region = ndimage.binary_dilation(ndimage.binary_fill_holes(mask), iterations=2)
        out.append((s.id, model.preprocess(s.image()), names.index(s.label), mask, region))
    assert len(out) >= 6
    return tuple(out)


def _map(method: str, x: torch.Tensor, target: int, **given) -> np.ndarray:
    model = _model()
    side = max(x.shape[-2:])
    params = {**sc.method_defaults(method, model.task, side), **given}
    return sc.attribute(model, x, method, target, **params).map.numpy()


def _signed(info: sc.MethodInfo, saliency: np.ndarray) -> np.ndarray:
    """The map as the display's "auto" sign reads it."""
    return np.abs(saliency) if info.sign == "absolute" else np.clip(saliency, 0, None)


LOCALISING = [m for m in sc.list_methods(task="classification") if m.localises]


def test_the_demo_model_recognises_every_scene() -> None:
    model = _model()
    for name, x, label, _, _ in _scenes():
        assert model.predict(x)[0].label == model.categories[label], name


def test_cam_methods_perturbation_methods_localise_and_pixel_gradients_do_not_claim_it() -> None:
    ids = {m.id for m in LOCALISING}
    assert {"gradcam", "cam", "scorecam", "occlusion", "rise"} <= ids
    assert not {"gradient", "smoothgrad", "integrated_gradients", "edges_sobel"} & ids
    for info in sc.list_methods(task="classification"):
        if not info.localises and info.family != "reference":
            says = ("maximum", "brightest")
            assert any(w in p for p in info.lesson.pitfalls for w in says), f"{info.id} does not say why"


@pytest.mark.parametrize("info", LOCALISING, ids=lambda m: m.id)
def test_default_map_peaks_on_the_object(info: sc.MethodInfo) -> None:
    misses = []
    for name, x, label, _, region in _scenes():
        saliency = _signed(info, _map(info.id, x, label))
        y, xx = np.unravel_index(np.argmax(saliency), saliency.shape)
        if not region[y, xx]:
            misses.append(f"{name}: peak at ({xx}, {y})")
    assert not misses, misses


@pytest.mark.parametrize("method", ["gradient", "gradient_x_input"])
def test_pixel_gradients_really_miss_the_object_somewhere(method: str) -> None:
    # The honest side of `localises = False`: their brightest pixel is off the object on some scene.
    info = next(m for m in sc.list_methods() if m.id == method)
    hits = []
    for _, x, label, _, region in _scenes():
        saliency = _signed(info, _map(method, x, label))
        hits.append(bool(region.flat[np.argmax(saliency)]))
    assert not all(hits)


def _band_and_mask_share(noise: float | None) -> tuple[float, float]:
    """Mean share of |SmoothGrad| in the bottom band and mean enrichment of the object over its area."""
    band, enrich = [], []
    for _, x, label, mask, _ in _scenes():
        given = {} if noise is None else {"noise": noise}
        saliency = np.abs(_map("smoothgrad", x, label, **given))
        total = saliency.sum()
        band.append(saliency[-BORDER:].sum() / total)
        enrich.append(saliency[mask].sum() / total / mask.mean())
    return float(np.mean(band)), float(np.mean(enrich))


def test_smoothgrad_default_has_no_bottom_band_and_favours_the_object() -> None:
    band_area = BORDER / _scenes()[0][1].shape[-2]
    band, enrich = _band_and_mask_share(None)
    assert band < 1.5 * band_area, band
    assert enrich > 1.5, enrich
    # The cause, kept visible: at 15% of the range the demo model no longer recognises the noisy copies,
    # and the mean gradient gathers in the bottom band.
    band_15, enrich_15 = _band_and_mask_share(0.15)
    assert band_15 > 2 * band and band_15 > 2.5 * band_area, (band_15, band)
    assert enrich_15 < enrich


def test_rise_map_is_the_paper_map_minus_the_mean_masked_score() -> None:
    model = _model()
    _, x, label, _, _ = _scenes()[0]
    a = sc.attribute(model, x, "rise", label, masks=64, seed=1)
    offset = (a.raw - a.map).numpy()
    assert np.allclose(offset, offset.flat[0], atol=1e-6)  # one constant: the mean masked score
    mean_score = float(offset.flat[0])
    assert 0.0 < mean_score < 1.0  # a probability
    assert a.raw.min() > 0  # the paper's map: all scores, never below zero
    # so drawn from 0 it is nearly uniform, while the centred map is signed and peaks on the object
    assert float(a.raw.min() / a.raw.max()) > 0.5
    assert a.map.min() < 0 < a.map.max()
