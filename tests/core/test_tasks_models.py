"""Random-init torchvision detectors, KeypointRCNN and segmenters: targets' gradients reach the image."""

from __future__ import annotations

import pytest
import torch

import saliency_core as sc
from saliency_core.hooks import get_layer, hook_count
from saliency_core.models.registry import get_spec

TASK_MODELS = [m.id for m in sc.list_models() if m.task != "classification"]


@pytest.fixture(scope="module")
def engine() -> sc.Engine:
    return sc.Engine(device="cpu")


def _small_rcnn(model: sc.LoadedModel, side: int) -> sc.LoadedModel:
    """Make a random-init R-CNN fast and make it detect: small inputs, few proposals, 'person' favoured.

    Random heads give every class about 1/91, below the 0.05 score threshold; a bias on class 1 fixes that.
    """
    m = model.module
    m.transform.min_size, m.transform.max_size = (side,), side
    m.rpn._pre_nms_top_n["testing"], m.rpn._post_nms_top_n["testing"] = 50, 10
    m.roi_heads.detections_per_img = 3
    with torch.no_grad():
        m.roi_heads.box_predictor.cls_score.bias[1] = 4.0
    return model


def _image(side: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("model_id", TASK_MODELS)
def test_every_task_model_builds_offline_with_its_cam_layers(
    model_id: str, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("SALIENCY_OFFLINE", "1")
    spec = get_spec(model_id)
    module = spec.build(None)  # no pretrained backbone either: nothing to download
    for layer in spec.layers:
        get_layer(module, layer)
    assert spec.categories() and spec.preprocess.max_side and spec.preprocess.multiple
    assert not list(tmp_path.rglob("*.pth"))


def test_detector_box_target_gradient_and_cams_flow_to_the_image(engine: sc.Engine) -> None:
    torch.manual_seed(0)
    model = _small_rcnn(engine.load_model("fasterrcnn_mobilenet_v3_large_fpn", weights=None), 160)
    assert model.task == "detection" and model.layers()[0] == "backbone.body.16"
    x = _image(160)
    predictions = model.predict(x, 3)
    assert predictions and predictions[0].label == "person" and predictions[0].category == 1
    x0, y0, x1, y1 = predictions[0].box
    target = sc.BoxTarget((x0 + 1, y0 + 1, x1 - 1, y1), 1)  # a box drawn by hand around the detection
    gradient = engine.attribute(model, x, "gradient", target)
    assert torch.isfinite(gradient.map).all() and gradient.raw.abs().sum() > 0
    assert gradient.target.score == pytest.approx(predictions[0].score)
    cam = engine.attribute(model, x, "gradcam", target)
    assert cam.raw.shape == (5, 5) and cam.raw.abs().sum() > 0
    level = engine.attribute(model, x, "gradcam", target, layer="backbone.fpn:0")
    assert level.raw.shape == (5, 5) and torch.isfinite(level.raw).all()
    output = engine.forward(model, x)
    drise = model.adapter.perturbation_score(gradient.target, output)
    assert 0 < drise.item() <= predictions[0].score
    assert hook_count(model.module) == 0


def test_keypoint_target_gradient_flows_and_matches_torchvision_scores(engine: sc.Engine) -> None:
    torch.manual_seed(0)
    model = _small_rcnn(engine.load_model("keypointrcnn_resnet50_fpn", weights=None), 128)
    x = _image(128, seed=1)
    people = model.predict(x, 2)
    assert people and all(isinstance(p, sc.KeypointTarget) for p in people)
    person = people[0]
    assert person.keypoints.shape == (17, 3) and person.keypoint_names[9] == "left_wrist"
    target = sc.KeypointTarget(person.box, "left_wrist").bind(engine.forward(model, x))
    output = engine.forward(model, x)
    index = target.match(output)[0]
    assert target.score == pytest.approx(float(output[0]["keypoints_scores"][index, 9]), abs=1e-3)
    assert output[0]["keypoint_heatmaps"].shape[1:] == (17, 56, 56)
    a = engine.attribute(model, x, "gradient", target)
    assert torch.isfinite(a.map).all() and a.raw.abs().sum() > 0
    assert hook_count(model.module) == 0


def test_segmentation_class_over_a_given_region_has_a_gradient(engine: sc.Engine) -> None:
    torch.manual_seed(0)
    model = engine.load_model("lraspp_mobilenet_v3_large", weights=None)
    x = model.preprocess(_image(96, seed=2))
    classes = model.predict(x, 3)
    assert classes and all(isinstance(t, sc.ClassTarget) and t.mask is not None for t in classes)
    region = torch.zeros(96, 96)
    region[20:60, 30:70] = 1
    target = sc.ClassTarget(15, label="person", mask=region)
    gradient = engine.attribute(model, x, "gradient", target)
    assert gradient.raw.abs().sum() > 0
    cam = engine.attribute(model, x, "gradcam", target)
    assert cam.raw.shape == (6, 6) and cam.raw.abs().sum() > 0
    assert model.adapter.perturbation_score(target, engine.forward(model, x)).shape == (1,)
