"""Model sources by id prefix: "timm:<name>" and "torchvision:<name>" build specs on the fly (task,
preprocessing, CAM layers, head), load with random init, default weights or a file, and describe
themselves without loading weights; token and channels-last outputs are read as grids."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

import saliency_core as sc
from saliency_core.hooks import hook_count
from saliency_core.models import sources, timm_source
from saliency_core.models.layers import to_grid


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("SALIENCY_OFFLINE", "1")
    return tmp_path


def test_source_ids_resolve_to_specs_with_the_tasks_of_their_builders() -> None:
    timm_info = sc.model_info("timm:resnet18")
    assert (timm_info.task, timm_info.num_classes, timm_info.default_layer) == (
        "classification",
        1000,
        "layer4",
    )
    assert timm_info.source == "timm" and timm_info.id == "timm:resnet18"
    assert sc.model_info("torchvision:resnet18", num_classes=7).num_classes == 7
    assert sc.model_info("torchvision:fasterrcnn_resnet50_fpn").task == "detection"
    assert sc.model_info("torchvision:keypointrcnn_resnet50_fpn").task == "keypoints"
    assert sc.model_info("torchvision:deeplabv3_resnet50").task == "segmentation"
    curated = {m.id: m for m in sc.list_models()}["resnet18"]
    assert sc.model_info("resnet18") == curated and curated.source == "curated"
    # Source ids are open-ended: list_models() keeps to the curated and plugin models.
    assert not any(":" in m.id for m in sc.list_models())


def test_list_architectures() -> None:
    timm_names = sc.list_architectures("timm")
    assert {"resnet18", "vit_tiny_patch16_224", "swin_tiny_patch4_window7_224"} <= set(timm_names)
    tv = set(sc.list_architectures("torchvision"))
    assert {"resnet18", "vit_b_16", "fasterrcnn_resnet50_fpn", "deeplabv3_resnet50"} <= tv
    assert "raft_large" not in tv and "quantized_resnet18" not in tv  # optical flow, quantized: not offered
    with pytest.raises(sc.InvalidParameter, match="timm, torchvision"):
        sc.list_architectures("keras")


@pytest.mark.parametrize(
    ("model_id", "close"),
    [
        ("timm:resnet181", "resnet18"),
        ("torchvision:resnet181", "resnet18"),
        ("timm:resnet18.bogus", "a1_in1k"),
    ],
)
def test_unknown_architectures_name_close_matches(model_id: str, close: str) -> None:
    with pytest.raises(sc.UnknownModel, match=rf"Unknown .* architecture .*Close matches:.*{close}"):
        sc.load_model(model_id, weights=None)


def test_a_bare_torchvision_name_points_to_its_prefixed_id() -> None:
    with pytest.raises(sc.UnknownModel, match="torchvision:resnet34"):
        sc.load_model("resnet34", weights=None)


def test_timm_preprocessing_comes_from_its_pretrained_cfg() -> None:
    spec = sources.resolve("timm:resnet10t")
    cfg = timm_source._create("resnet10t", {}, pretrained=False).pretrained_cfg
    assert spec.preprocess.crop == cfg["input_size"][1] == 176
    assert spec.preprocess.resize == round(176 / cfg["crop_pct"])
    assert spec.preprocess.interpolation == cfg["interpolation"] == "bicubic"
    assert spec.preprocess.mean == tuple(cfg["mean"])
    vit = sources.resolve("timm:vit_tiny_patch16_224").preprocess
    assert vit.mean == (0.5, 0.5, 0.5) and vit.resize == round(224 / 0.9)


def test_torchvision_specs_follow_the_curated_ones() -> None:
    spec = sources.resolve("torchvision:resnet18", 7)
    curated = sources.resolve("torchvision:resnet18")
    assert spec.layers == ("layer4", "layer3", "layer2", "layer1") and spec.cam_head == "fc"
    assert spec.preprocess.crop == 224 and spec.num_classes == 7 and curated.num_classes == 1000
    mobile = sources.resolve("torchvision:mobilenet_v3_small")  # not curated: guessed from its structure
    assert mobile.layers[0] == "features.12" and mobile.extra["classifier"] == "classifier.3"
    swin = sources.resolve("torchvision:swin_t")
    assert swin.layers[0] == "features.7"  # the last stage, channels-last
    det = sources.resolve("torchvision:fasterrcnn_mobilenet_v3_large_320_fpn", 3)
    assert det.task == "detection" and det.preprocess.max_side == 640 and det.layers[0] == "backbone.body.16"


def test_timm_default_layers() -> None:
    assert sources.resolve("timm:vit_tiny_patch16_224").layers[0] == "blocks.11.norm1"
    swin = sources.resolve("timm:swin_tiny_patch4_window7_224")
    assert swin.layers[0] == "layers.3"
    # Swin's stages are channels-last [N, h, w, C]; the spec's reshape reads them as [N, C, h, w].
    assert tuple(swin.reshape("layers.3")(torch.zeros(1, 7, 7, 768)).shape) == (1, 768, 7, 7)


def test_token_and_channels_last_outputs_read_as_grids() -> None:
    tokens = torch.arange(2 * 197 * 3, dtype=torch.float32).reshape(2, 197, 3)
    grid = to_grid(tokens, grid=(14, 14), prefix=1)
    assert grid.shape == (2, 3, 14, 14)
    assert torch.equal(grid[1, 2, 0, 0], tokens[1, 1, 2]) and torch.equal(grid[0, 0, 0, 1], tokens[0, 2, 0])
    registers = torch.randn(1, 1 + 4 + 12 * 8, 5)  # class + 4 register tokens, a 12x8 patch grid
    assert to_grid(registers, grid=(12, 8), prefix=5).shape == (1, 5, 12, 8)
    assert to_grid(torch.randn(1, 50, 4)).shape == (1, 4, 7, 7)  # unknown geometry: 1 + a square
    assert to_grid(torch.randn(1, 49, 4)).shape == (1, 4, 7, 7)
    nhwc = torch.randn(1, 7, 7, 96)
    assert torch.equal(to_grid(nhwc, nhwc=True), nhwc.permute(0, 3, 1, 2))
    assert to_grid(torch.randn(1, 96, 7, 7), nhwc=True).shape == (1, 96, 7, 7)  # a conv's NCHW output
    assert to_grid(torch.randn(1, 1000)).ndim == 2  # not a grid: left for the clear message
    assert to_grid(torch.randn(1, 40, 4)).ndim == 3  # neither a square nor one token and a square


def test_layer_tree_lists_every_module_with_its_shape_defaults_first() -> None:
    model = sc.load_model("timm:resnet10t", weights=None)
    x = torch.randn(1, 3, 64, 64)
    tree = model.layer_tree(x)
    names = [n for n, _ in tree]
    assert names[: len(model.layers())] == model.layers() == ["layer4", "layer3", "layer2", "layer1"]
    assert sorted(names) == sorted(n for n, _ in model.module.named_modules() if n)
    shapes = dict(tree)
    assert shapes["layer4"] == (1, 512, 2, 2) and shapes["fc"] == (1, 1000) and shapes["layer1.0.conv1"]
    assert hook_count(model.module) == 0
    calls: list[int] = []
    handle = model.module.register_forward_hook(lambda *_: calls.append(1))
    try:
        assert model.layer_tree(x) == tree  # measured once per model and input size
    finally:
        handle.remove()
    assert not calls


def test_a_layer_that_is_not_a_grid_gets_the_clear_message() -> None:
    model = sc.load_model("timm:resnet10t", weights=None)
    with pytest.raises(sc.InvalidParameter, match=r"shape \(1, 1000\); CAM methods need a spatial"):
        sc.attribute(model, torch.randn(1, 3, 64, 64), "gradcam", 3, layer="fc")


def test_zero_head_warning() -> None:
    vit = sc.load_model("torchvision:vit_b_16", weights=None)  # torchvision zero-initialises ViT heads
    warning = vit.zero_head_warning()
    assert "heads.head" in warning and "blank" in warning and "weights" in warning
    assert sc.load_model("torchvision:resnet18", weights=None).zero_head_warning() == ""


def test_random_init_categories_and_card() -> None:
    tv = sc.load_model("torchvision:resnet18", weights=None)
    assert tv.categories[281] == "tabby"  # the weights enum's names fit the 1000-class head
    seven = sc.load_model("torchvision:resnet18", weights=None, num_classes=7)
    assert seven is not tv and seven.categories == [f"class {i}" for i in range(7)]
    assert seven.module.fc.out_features == 7
    timm_model = sc.load_model("timm:resnet10t", weights=None)
    assert timm_model.categories[0] == "class 0"  # ImageNet names only with pretrained weights
    assert timm_model.source_info() == {
        "source": "timm",
        "architecture": "resnet10t",
        "weights": "random",
        "weights_sha256": "",
        "categories_file": "",
        "categories_sha256": "",
        "num_classes": 1000,
    }
    assert sc.load_model("resnet18", weights=None).source_info()["source"] == "curated"


def test_num_classes_is_for_source_models(offline: Path) -> None:
    with pytest.raises(sc.InvalidParameter, match="torchvision:resnet18"):
        sc.load_model("resnet18", weights=None, num_classes=7)
    with pytest.raises(sc.InvalidParameter, match="num_classes"):
        sc.load_model("timm:resnet10t", weights=None, num_classes=0)


def test_default_weights_offline_say_what_to_do(offline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(sc.WeightsUnavailable) as err:
        sc.Engine(device="cpu").load_model("torchvision:resnet18")
    assert err.value.file_name == "resnet18-f37072fd.pth"
    assert str(offline / "hub" / "checkpoints") in str(err.value)
    with pytest.raises(sc.WeightsUnavailable, match=r"offline.*local weights file") as err:
        sc.Engine(device="cpu").load_model("timm:resnet10t")
    # Where sc.download_weights puts the Hub's file (the Hub cache's own layout is not for hand-placed files).
    assert "timm/resnet10t" in str(err.value)
    assert err.value.file_name == "timm--timm--resnet10t.c3_in1k--model.safetensors"
    assert str(offline / "hub" / "checkpoints") in str(err.value)
    assert not sc.model_info("timm:resnet10t").weights_available


def test_default_weights_from_the_caches(offline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(4)
    state = torchvision.models.resnet18(weights=None).state_dict()
    cached = offline / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    torch.save(state, cached)
    tv = sc.Engine(device="cpu").load_model("torchvision:resnet18")
    assert torch.equal(tv.module.fc.weight, state["fc.weight"]) and tv.categories[0] == "tench"
    assert sc.model_info("torchvision:resnet18").weights_available
    # timm's pretrained file, found in the Hugging Face cache, is read as data and handed to timm.
    timm_state = timm_source._create("resnet10t", {}, pretrained=False).state_dict()
    file = offline / "model.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in timm_state.items()}, str(file))
    monkeypatch.setattr(timm_source, "cached_weights", lambda cfg: file)
    model = sc.Engine(device="cpu").load_model("timm:resnet10t")
    assert torch.equal(model.module.fc.weight, timm_state["fc.weight"])
    assert model.categories[0] == "tench" and model.source_info()["weights"] == "default"
