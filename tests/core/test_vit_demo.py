"""The bundled demo transformer: a torchvision VisionTransformer loaded through the catalogue, its held-out
accuracy, its predictions named by the shape classes, Grad-CAM over its reshaped tokens, and a training
smoke run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from known_models import one_torch_thread
from safetensors.torch import load_file
from torchvision.models import VisionTransformer

import saliency_core as sc
from saliency_core.zoo import HELDOUT_SEED_START, SAMPLE_SEED_START
from saliency_core.zoo.scenes import SHAPE_CLASSES, make_batch
from saliency_core.zoo.shapes_vit import (
    CAM_LAYERS,
    MEAN,
    STD,
    TRUNK,
    build_shapes_vit,
    forward_window,
    normalize,
)
from saliency_core.zoo.train_vit_demo import token_gradcam, train

ASSETS = Path(__file__).resolve().parents[2] / "assets"
WEIGHTS = ASSETS / "shapes_vit_demo.safetensors"
META = ASSETS / "shapes_vit_demo.json"
# Held-out seeds the training script never reports on (it uses 1_000_000 ..), disjoint from the CNN's
# test seeds (1_500_000 ..) and from the sample scenes (2_000_000 ..).
TEST_SEEDS = list(range(HELDOUT_SEED_START + 600_000, HELDOUT_SEED_START + 600_100))
# Measured 1.00 on TEST_SEEDS (and 0.998 on the script's 500 held-out scenes); the bar leaves room for
# torch versions' numeric differences, far above chance (1/6).
ACCURACY_BAR = 0.95
# Pointing game (15 px) of the attention maps on the first 30 TEST_SEEDS, measured: rollout 1.00, Chefer
# 0.97, while a uniformly random pixel lands within 15 px of the object with probability 0.18 there.
POINTING_BAR = 0.8


@pytest.fixture(scope="module")
def loaded() -> sc.LoadedModel:
    with one_torch_thread():
        return sc.Engine(device="cpu").load_model("shapes_vit_demo")


@pytest.fixture(scope="module")
def heldout() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return make_batch(TEST_SEEDS)


def test_weights_file_and_metadata() -> None:
    assert WEIGHTS.stat().st_size < 3_200_000
    meta = json.loads(META.read_text())
    assert meta["classes"] == list(SHAPE_CLASSES)
    assert meta["mean"] == list(MEAN) and meta["std"] == list(STD)
    assert meta["train_seeds"][1] < HELDOUT_SEED_START <= meta["heldout_seeds"][0]
    assert meta["heldout_seeds"][1] < TEST_SEEDS[0] and TEST_SEEDS[-1] < SAMPLE_SEED_START
    assert meta["parameters"] == sum(p.numel() for p in build_shapes_vit().parameters())
    assert meta["heldout_accuracy"] >= ACCURACY_BAR
    for key in ("seed", "steps", "training_seconds", "torch_version", "date"):
        assert key in meta
    state = load_file(str(WEIGHTS))
    build_shapes_vit().load_state_dict(state, strict=True)


def test_catalogue_entry_is_a_torchvision_vit(loaded: sc.LoadedModel) -> None:
    assert isinstance(loaded.module, VisionTransformer)
    assert loaded.task == "classification" and loaded.categories == list(SHAPE_CLASSES)
    assert loaded.spec is not None and loaded.spec.layers == CAM_LAYERS
    blocks = loaded.module.encoder.layers
    assert len(blocks) == 4 and all(isinstance(b.self_attention, torch.nn.MultiheadAttention) for b in blocks)


def test_trunk_is_the_bundled_cnn_kept_fixed() -> None:
    """Training starts the patch embedding's conv stages from ShapesNet and never updates them."""
    vit, cnn = load_file(str(WEIGHTS)), load_file(str(ASSETS / "shapes_demo.safetensors"))
    trunk = {k: v for k, v in cnn.items() if k.split(".")[0] in TRUNK}
    assert trunk
    for key, value in trunk.items():
        assert torch.equal(vit[f"conv_proj.{key}"], value), key


def test_heldout_accuracy_and_class_names(
    loaded: sc.LoadedModel, heldout: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    images, labels, _ = heldout
    preds = []
    with one_torch_thread():
        for image in images:
            (top,) = loaded.predict(loaded.preprocess(image), top_k=1)
            assert top.label == SHAPE_CLASSES[top.index]
            preds.append(top.index)
        # the catalogue's preprocessing is the training normalisation: same logits as the raw module
        with torch.no_grad():
            raw = loaded.module(normalize(torch.from_numpy(images[:8]))).argmax(1).numpy()
    assert (raw == np.array(preds[:8])).all()
    acc = float((np.array(preds) == labels).mean())
    assert acc >= ACCURACY_BAR, f"held-out accuracy {acc:.3f}"


def test_gradcam_over_reshaped_tokens_matches_standalone(
    loaded: sc.LoadedModel, heldout: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    """The engine reads the block norm's [N, 197, C] tokens as a 14x14 grid; a standalone Grad-CAM over
    the same 196 patch tokens (class token dropped) gives the same map."""
    images, labels, _ = heldout
    with one_torch_thread():
        for i in range(2):
            x = loaded.preprocess(images[i])
            a = loaded.engine.attribute(loaded, x, "gradcam", int(labels[i]))
            assert a.map.shape == (224, 224) and torch.isfinite(a.map).all()
            standalone = token_gradcam(
                loaded.module,
                normalize(torch.from_numpy(images[i : i + 1])),
                torch.tensor([labels[i]]),
                CAM_LAYERS[0],
            )[0]
            # float32 sums over 96 channels and 196 tokens in another order: agreement to 1e-4 relative
            torch.testing.assert_close(a.map, standalone, rtol=1e-4, atol=1e-6)


def test_window_forward_is_the_full_forward() -> None:
    model = build_shapes_vit().eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(forward_window(model, x, (0, 0)), model(x))


def test_train_smoke(tmp_path: Path) -> None:
    with one_torch_thread():
        meta = train(
            steps=2,
            out_dir=tmp_path,
            seed=3,
            train_scenes=16,
            heldout_scenes=4,
            batch_size=8,
            workers=1,
            threads=1,
            monitor=0,
            warmup=1,
            log=None,
        )
    on_disk = json.loads((tmp_path / "shapes_vit_demo.json").read_text())
    assert on_disk == meta and on_disk["steps"] == 2 and on_disk["train_seeds"] == [0, 15]
    m = build_shapes_vit()
    m.load_state_dict(load_file(str(tmp_path / "shapes_vit_demo.safetensors")), strict=True)


@pytest.mark.parametrize("method", ["attention_rollout", "chefer"])
def test_attention_maps_point_at_the_object(
    loaded: sc.LoadedModel, heldout: tuple[np.ndarray, np.ndarray, np.ndarray], method: str
) -> None:
    images, labels, masks = heldout
    n, hits = 20, 0
    with one_torch_thread():
        for image, label, mask in zip(images[:n], labels[:n], masks[:n]):
            a = loaded.engine.attribute(loaded, loaded.preprocess(image), method, int(label))
            hits += sc.metrics.pointing_game(a.map, mask, tolerance=15)
    assert hits / n >= POINTING_BAR, f"{method} pointing hit-rate {hits / n:.2f}"
