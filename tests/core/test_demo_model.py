"""The committed demo classifier: strict loading, held-out accuracy, Grad-CAM localisation, and a training smoke run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import saliency_core as sc
from saliency_core.zoo import HELDOUT_SEED_START, SAMPLE_SEED_START
from saliency_core.zoo.check_demo import gradcam, pointing_hit
from saliency_core.zoo.scenes import SHAPE_CLASSES, make_batch
from saliency_core.zoo.shapes_net import CAM_LAYERS, MEAN, STD, ShapesNet, build_shapes_net, normalize
from saliency_core.zoo.train_demo import train

ASSETS = Path(__file__).resolve().parents[2] / "assets"
WEIGHTS = ASSETS / "shapes_demo.safetensors"
META = ASSETS / "shapes_demo.json"
# 200 held-out seeds: in the held-out range, never trained on, not the sample scenes, and not the seeds
# the training script reports on (1_000_000 ..), so these numbers were not looked at while tuning.
TEST_SEEDS = list(range(HELDOUT_SEED_START + 500_000, HELDOUT_SEED_START + 500_200))


@pytest.fixture(scope="module")
def model() -> ShapesNet:
    m = build_shapes_net()
    m.load_state_dict(load_file(str(WEIGHTS)), strict=True)
    return m.eval()


@pytest.fixture(scope="module")
def heldout() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return make_batch(TEST_SEEDS)


def test_weights_file_and_metadata() -> None:
    assert WEIGHTS.stat().st_size < 5_000_000
    meta = json.loads(META.read_text())
    assert meta["classes"] == list(SHAPE_CLASSES)
    assert meta["mean"] == list(MEAN) and meta["std"] == list(STD)
    assert meta["heldout_accuracy"] >= 0.95
    _train_lo, train_hi = meta["train_seeds"]
    assert (
        train_hi
        < HELDOUT_SEED_START
        <= meta["heldout_seeds"][0]
        <= meta["heldout_seeds"][1]
        < SAMPLE_SEED_START
    )
    assert train_hi < TEST_SEEDS[0] and TEST_SEEDS[-1] < SAMPLE_SEED_START
    assert meta["parameters"] == sum(p.numel() for p in build_shapes_net().parameters())
    for key in ("seed", "epochs", "training_seconds", "torch_version", "date"):
        assert key in meta


def test_architecture_is_cam_friendly(model: ShapesNet) -> None:
    for name in CAM_LAYERS:
        assert isinstance(model.get_submodule(name), nn.Sequential)
    assert isinstance(model.pool, nn.AdaptiveAvgPool2d) and isinstance(model.fc, nn.Linear)
    assert model.fc.out_features == len(SHAPE_CLASSES)
    with torch.no_grad():
        feats = model.features(torch.zeros(1, 3, 224, 224))
    assert feats.shape[-2:] == (14, 14) and feats.shape[1] == model.fc.in_features


def test_gradcam_equals_classic_cam(
    model: ShapesNet, heldout: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    """With a GAP + linear head, Grad-CAM's channel weights are fc.weight[c] / (h * w): it is CAM, rescaled."""
    images, labels, _ = heldout
    x = normalize(torch.from_numpy(images[:4]))
    y = torch.from_numpy(labels[:4])
    with torch.no_grad():
        acts = model.features(x)
    cam = torch.einsum("nk,nkhw->nhw", model.fc.weight[y], acts) / (acts.shape[-2] * acts.shape[-1])
    cam = torch.nn.functional.interpolate(
        cam[:, None], size=(224, 224), mode="bilinear", align_corners=False
    )[:, 0]
    torch.testing.assert_close(gradcam(model, x, y, "stage4"), cam, rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def library_model() -> sc.LoadedModel:
    """The demo model through the same registry and weights path as every other model."""
    return sc.Engine(device="cpu").load_model("shapes_demo")


def test_heldout_accuracy(
    library_model: sc.LoadedModel, heldout: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    images, labels, _ = heldout
    preds = [library_model.predict(library_model.preprocess(image), top_k=1)[0].index for image in images]
    acc = float((np.array(preds) == labels).mean())
    assert acc >= 0.95, f"held-out accuracy {acc:.3f}"


def test_gradcam_pointing_game(
    library_model: sc.LoadedModel, heldout: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    images, labels, masks = heldout
    engine = library_model.engine
    hits = 0
    for image, label, mask in zip(images, labels, masks):
        x = library_model.preprocess(image)
        a = engine.attribute(library_model, x, "gradcam", int(label))
        hits += sc.metrics.pointing_game(a.map, mask, tolerance=15)
    rate = hits / len(images)
    assert rate >= 0.90, f"Grad-CAM pointing hit-rate {rate:.3f}"


def test_library_and_standalone_gradcam_agree(
    library_model: sc.LoadedModel, model: ShapesNet, heldout: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    images, labels, _ = heldout
    x = library_model.preprocess(images[0])
    a = library_model.engine.attribute(library_model, x, "gradcam", int(labels[0]))
    standalone = gradcam(model, normalize(torch.from_numpy(images[:1])), torch.from_numpy(labels[:1]))[0]
    torch.testing.assert_close(a.map, standalone, rtol=1e-4, atol=1e-6)


def test_pointing_hit_definition() -> None:
    mask = np.zeros((50, 50), bool)
    mask[20:30, 20:30] = True
    sal = np.zeros((50, 50))
    sal[25, 44] = 1.0  # 15 px right of the mask's last column
    assert pointing_hit(sal, mask, tolerance=15)
    sal[25, 44], sal[25, 46] = 0.0, 1.0  # 17 px
    assert not pointing_hit(sal, mask, tolerance=15)


def test_train_smoke(tmp_path: Path) -> None:
    meta = train(
        epochs=1,
        out_dir=tmp_path,
        seed=3,
        train_scenes=16,
        heldout_scenes=8,
        batch_size=8,
        workers=1,
        log=None,
    )
    weights, meta_file = tmp_path / "shapes_demo.safetensors", tmp_path / "shapes_demo.json"
    assert weights.is_file() and meta_file.is_file()
    on_disk = json.loads(meta_file.read_text())
    assert on_disk == meta
    assert on_disk["epochs"] == 1 and on_disk["seed"] == 3 and on_disk["train_seeds"] == [0, 15]
    assert 0.0 <= on_disk["heldout_accuracy"] <= 1.0
    m = build_shapes_net()
    m.load_state_dict(load_file(str(weights)), strict=True)
    assert m(torch.zeros(1, 3, 224, 224)).shape == (1, len(SHAPE_CLASSES))
