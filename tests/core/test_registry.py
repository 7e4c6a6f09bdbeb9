"""Registry and method schemas: every registered model builds, its layers exist, every schema is usable."""

from __future__ import annotations

import pytest
import torch

import saliency_core as sc
from saliency_core.methods import FAMILIES

CLASSIFIERS = [
    "resnet18",
    "resnet50",
    "vgg16",
    "densenet121",
    "alexnet",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "convnext_tiny",
    "vit_b_16",
]


def _randomise_zero_head(module: torch.nn.Module) -> None:
    """torchvision initialises ViT's head to zeros, which makes every gradient zero; give it random weights."""
    head = getattr(getattr(module, "heads", None), "head", None)
    if head is not None:
        with torch.no_grad():
            head.weight.normal_(0, 0.02, generator=torch.Generator().manual_seed(0))


def test_the_issue_models_are_registered() -> None:
    models = {m.id: m for m in sc.list_models()}
    for model_id in [*CLASSIFIERS, "shapes_demo"]:
        info = models[model_id]
        assert info.task == "classification" and info.title and info.default_layer
    assert models["resnet50"].num_classes == 1000
    assert models["shapes_demo"].weights_available


@pytest.mark.parametrize("model_id", CLASSIFIERS)
def test_every_candidate_layer_gives_a_spatial_map(model_id: str) -> None:
    engine = sc.Engine(device="cpu")
    model = engine.load_model(model_id, weights=None)
    _randomise_zero_head(model.module)
    x = model.preprocess(torch.randint(0, 255, (256, 300, 3), dtype=torch.uint8).numpy())
    assert x.shape == (1, 3, 224, 224)
    a = engine.attribute(model, x, "gradcam", 1, layer=model.layers()[0])
    assert a.raw.ndim == 2 and 7 <= a.raw.shape[0] <= 14 and a.map.shape == (224, 224)
    assert a.raw.abs().sum() > 0, "the target's gradient must reach the default layer"
    for layer in model.layers()[1:]:
        assert engine.layer_channels(model, layer, x) > 0
    engine.unload(model_id)


def test_vit_layers_are_token_grids_without_the_class_token() -> None:
    engine = sc.Engine(device="cpu")
    model = engine.load_model("vit_b_16", weights=None)
    _randomise_zero_head(model.module)
    x = torch.randn(1, 3, 224, 224)
    a = engine.attribute(model, x, "gradcam", 7)
    assert a.raw.shape == (14, 14) and a.raw.abs().sum() > 0
    assert engine.layer_channels(model, model.layers()[0], x) == 768


def test_cam_is_offered_only_where_the_head_fits() -> None:
    engine = sc.Engine(device="cpu")
    vgg = engine.load_model("alexnet", weights=None)
    with pytest.raises(sc.InvalidParameter, match="Grad-CAM"):
        engine.attribute(vgg, torch.randn(1, 3, 224, 224), "cam", 1)


def test_method_schemas_are_complete_and_their_defaults_valid() -> None:
    methods = sc.list_methods()
    ids = {m.id for m in methods}
    assert ids >= {
        "gradient",
        "gradient_x_input",
        "smoothgrad",
        "integrated_gradients",
        "guided_backprop",
        "occlusion",
        "rise",
        "cam",
        "gradcam",
        "gradcam_pp",
        "xgradcam",
        "hirescam",
        "layercam",
        "scorecam",
        "eigencam",
        "guided_gradcam",
        "edges_sobel",
        "edges_canny",
        "spectral_residual",
    }
    families = [m.family for m in methods]
    assert families == sorted(families, key=FAMILIES.index), "listed in family order"
    for m in methods:
        assert m.title and m.description and m.family in FAMILIES
        for p in m.params:
            assert set(p) >= {"name", "type", "default", "min", "max", "choices", "help"}
            assert p["help"], (m.id, p["name"])
            if p["type"] == "choice":
                assert p["default"] in p["choices"]
            if p["type"] in ("int", "float") and p["default"] is not None:
                assert (p["min"] is None or p["default"] >= p["min"]) and (
                    p["max"] is None or p["default"] <= p["max"]
                )
    assert {m.id for m in methods if not m.needs_target} == {
        "attention_rollout",
        "eigencam",
        "edges_sobel",
        "edges_canny",
        "spectral_residual",
    }
    assert {m.id for m in sc.list_methods(family="cam")} >= {"gradcam", "scorecam"}


def test_shared_parameter_names() -> None:
    params = {m.id: {p["name"]: p for p in m.params} for m in sc.list_methods()}
    assert {"patch", "stride", "baseline", "batch_size"} <= set(params["occlusion"])
    assert {"steps", "baseline", "batch_size"} <= set(params["integrated_gradients"])
    assert params["integrated_gradients"]["baseline"]["choices"] == ["zero", "black", "blur", "uniform"]
    assert params["occlusion"]["baseline"]["choices"] == ["zero", "mean", "blur"]
    assert {"samples", "noise", "mode", "seed"} <= set(params["smoothgrad"])
    assert params["smoothgrad"]["mode"]["choices"] == ["smoothgrad", "smoothgrad_sq", "vargrad"]
    assert {"masks", "cell", "p", "seed"} <= set(params["rise"])
    assert all("layer" in params[m] for m in ("gradcam", "scorecam", "eigencam", "cam", "guided_gradcam"))


def test_hand_fetched_weights_say_where_to_get_them_and_one_weights_choice_unloads() -> None:
    models = {m.id: m for m in sc.list_models()}
    assert "xuebinqin/U-2-Net" in models["u2netp"].weights_help
    assert models["resnet50"].weights_help == ""  # downloadable: the missing-file message suffices
    engine = sc.Engine(device="cpu")
    random_init = engine.load_model("shapes_demo", weights=None)
    bundled = engine.load_model("shapes_demo")
    engine.unload("shapes_demo", weights="random")
    assert engine.load_model("shapes_demo") is bundled
    assert engine.load_model("shapes_demo", weights=None) is not random_init
