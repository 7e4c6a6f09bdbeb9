"""Detection, pose, segmentation and salient-object flows through AppTest, with weights files in a temporary
TORCH_HOME (or uploaded), made from random-init models the way the library builds them.

Random detection heads score every class about 1/91, below any threshold; a bias on class 1 (person) in the
weights file makes them detect on the sample photo, so predictions and targets exist. Each loaded model is
then made cheap the way the core tests do it (few proposals, few detections; the pose model at 320 pixels):
configuration only, the weights stay those of the file.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
import torch
from app_helpers import computed, texts

import saliency_core as sc
from ui import state
from ui.results import Result
from ui.view import prediction_picture

DETECTOR = "fasterrcnn_mobilenet_v3_large_fpn"
POSE = "keypointrcnn_resnet50_fpn"
SEGMENTER = "lraspp_mobilenet_v3_large"
SALIENT = "u2netp"
COMPARE = "pages/1_Compare.py"
PHOTO = "astronaut"


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty torchvision cache, no downloads, and a fresh engine (models loaded from this folder only)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("SALIENCY_OFFLINE", "1")
    previous = sc.get_engine()
    sc.set_engine(sc.Engine(device="cpu"))
    yield tmp_path
    sc.set_engine(previous)


def _state(model_id: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random-init model's state dict as the library builds it, without batch-norm step counters."""
    torch.manual_seed(seed)
    module = sc.Engine(device="cpu").load_model(model_id, weights=None).module
    return {k: v.clone() for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}


def _weights_path(model_id: str) -> Path:
    return Path({m.id: m for m in sc.list_models()}[model_id].weights_path)


def _place(model_id: str, state_dict: dict[str, torch.Tensor] | bytes) -> Path:
    path = _weights_path(model_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(state_dict, bytes):
        path.write_bytes(state_dict)
    else:
        torch.save(state_dict, path)
    return path


def _photo() -> object:
    return sc.load_image(next(s for s in sc.list_samples() if s.id == PHOTO).path)


def _detecting(model_id: str) -> dict[str, torch.Tensor]:
    """A random-init detector that detects persons on the sample photo, with scores that depend on it.

    Batch-norm statistics are measured on the photo (random layers with unit statistics make features that
    hardly vary, so every score and gradient would be flat), then the person logit is spread and shifted
    so that about half of the proposals score above 0.5, by different amounts.
    """
    torch.manual_seed(0)
    model = sc.Engine(device="cpu").load_model(model_id, weights=None)
    module = model.module
    module.rpn._pre_nms_top_n["testing"], module.rpn._post_nms_top_n["testing"] = 40, 8  # as _make_cheap
    x = model.preprocess(_photo())
    norms = [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
        norm.train()
    features: dict[str, torch.Tensor] = {}
    head = module.roi_heads.box_predictor.cls_score
    handle = head.register_forward_hook(lambda _m, inputs, _out: features.update(x=inputs[0]))
    with torch.no_grad():
        module(list(x))
        module.eval()
        module(list(x))
        handle.remove()
        person = features["x"] @ head.weight[1]
        head.weight[1] *= 1.5 / person.std().clamp(min=1e-9)
        head.bias[1] = 5.0 - torch.quantile(features["x"] @ head.weight[1], 0.5)
    return {k: v.clone() for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}


def _make_cheap(model_id: str, side: int | None = None) -> None:
    """Few proposals and detections (and a smaller internal size) on the engine's copy the app will use."""
    m = sc.load_model(model_id).module
    m.rpn._pre_nms_top_n["testing"], m.rpn._post_nms_top_n["testing"] = 40, 8
    m.roi_heads.detections_per_img = 3
    if side is not None:
        m.transform.min_size, m.transform.max_size = (side,), side


def _start(app, model_id: str):
    at = app()
    at.button(key=f"act.sample.{PHOTO}").click().run()
    at.selectbox(key=state.MODEL).set_value(model_id).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _latest(at) -> Result:
    return list(at.session_state[state.RESULTS]._items.values())[-1]


def _non_trivial(result: Result) -> bool:
    return bool(np.isfinite(result.map).all() and np.ptp(result.map) > 0)


def _find(at, method: str, target: str) -> Result | None:
    found = [
        r
        for r in at.session_state[state.RESULTS]._items.values()
        if (r.method, r.target_label) == (method, target)
    ]
    return found[-1] if found else None


def _shown(at) -> Result:
    """The map of the current method and target, pressing Run when it was not cheap enough to run by itself."""
    method, target = at.session_state[state.METHOD], at.session_state[state.VIEW].target_label
    if _find(at, method, target) is None:
        at.button(key="act.run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    result = _find(at, method, target)
    assert result is not None, texts(at)
    return result


def _compare_three_methods(at) -> None:
    """Compare on the current image and target: three maps in a grid, their agreement and difference."""
    at.switch_page(COMPARE).run()
    at.multiselect(key="compare.methods").set_value(["gradcam", "gradient", "edges_sobel"]).run()
    if "act.compare.run" in [b.key for b in at.button]:
        at.button(key="act.compare.run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.main.image) >= 5 and "Mean absolute difference" in texts(at)


def _compare_several_boxes(at) -> None:
    """Compare's several-targets mode on a detector: one Grad-CAM per listed box, each its own target."""
    at.button_group(key=state.COMPARE_MODE).set_value("One method, several targets").run()
    at.selectbox(key=state.COMPARE_TARGETS_METHOD).set_value("gradcam").run()
    if "act.compare.run" in [b.key for b in at.button]:
        at.button(key="act.compare.run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    view = at.session_state[state.VIEW]
    k = int(at.select_slider(key=state.COMPARE_TARGETS_K).value)
    maps = {
        r.target_label: r for r in at.session_state[state.RESULTS]._items.values() if r.method == "gradcam"
    }
    for box in view.predictions[:k]:
        expected = sc.attribute(view.model, view.x, "gradcam", box).map
        np.testing.assert_allclose(maps[box.describe()].map, np.asarray(expected), rtol=1e-4, atol=1e-6)


def _pick_method(at, family: str, method: str) -> Result:
    at.button_group(key=state.FAMILY).set_value(family).run()
    at.selectbox(key=state.METHOD).set_value(method).run()
    return _shown(at)


def test_detection_targets_boxes_gradients_cams_and_compare(app, torch_home: Path) -> None:
    _place(DETECTOR, _detecting(DETECTOR))
    _make_cheap(DETECTOR)
    at = _start(app, DETECTOR)
    view = at.session_state[state.VIEW]
    picker = at.selectbox(key=state.TARGET)
    assert len(picker.options) >= 2 and all(" — " in o and "person" in o for o in picker.options)
    assert "detections; the chosen one highlighted" in texts(at)
    assert (prediction_picture(view) != view.picture).any()  # boxes drawn
    assert _non_trivial(_latest(at)) and _latest(at).method == "gradcam"  # Grad-CAM ran by itself
    picker.set_value(1).run()
    assert at.session_state[state.VIEW].target_key() != view.target_key()
    assert _shown(at).target_index == 1 and _non_trivial(_latest(at))
    assert _non_trivial(_pick_method(at, "gradient", "gradient"))
    # occlusion's defaults scale with the 640-pixel input; Score-CAM says what it costs on a detector
    at.button_group(key=state.FAMILY).set_value("perturbation").run()
    assert at.slider(key="param.occlusion.patch").value == 128
    assert at.slider(key="param.occlusion.stride").value == 64
    at.button_group(key=state.FAMILY).set_value("cam").run()
    at.selectbox(key=state.METHOD).set_value("scorecam").run()
    assert "Score-CAM makes one forward pass per channel" in texts(at)
    assert not at.exception
    # Compare: the same image and target, a grid, agreement and difference
    at.selectbox(key=state.METHOD).set_value("gradcam").run()
    _compare_three_methods(at)
    _compare_several_boxes(at)
    # a threshold above every score: the chosen detection is gone, and that is said plainly
    at.slider(key=state.THRESHOLD).set_value(0.95).run()
    assert not at.exception
    said = texts(at)
    assert "no longer listed" in said and "No detection scores 0.95 or more" in said


def test_pose_person_and_keypoint_by_name(app, torch_home: Path) -> None:
    _place(POSE, _detecting(POSE))
    _make_cheap(POSE, side=320)
    at = _start(app, POSE)
    persons = at.selectbox(key=state.TARGET)
    assert persons.options and all(o.startswith("person ") for o in persons.options)
    keypoint = at.selectbox(key=state.KEYPOINT)
    assert len(keypoint.options) == 17
    keypoint.set_value("left_wrist").run()
    view = at.session_state[state.VIEW]
    assert isinstance(view.target, sc.KeypointTarget) and view.target.keypoint_name == "left_wrist"
    assert "left_wrist" in view.target_label
    assert (prediction_picture(view) != view.picture).any()  # box, skeleton and the chosen point
    assert "skeleton and keypoint" in texts(at)
    result = _shown(at)
    assert result.method == "gradcam" and "left_wrist" in result.target_label and _non_trivial(result)
    assert _non_trivial(_pick_method(at, "gradient", "gradient_x_input"))
    assert not at.exception
    # the share link names the keypoint, and opening it picks the same person and keypoint
    link = dict(at.query_params)
    assert link["keypoint"] == "left_wrist" and link["model"] == POSE
    shared = app(query=link)
    assert shared.session_state[state.VIEW].target.keypoint_name == "left_wrist"


def _two_class_segmenter() -> dict[str, torch.Tensor]:
    """Random LR-ASPP whose argmax is background or person (the other classes' biases very low)."""
    state_dict = _state(SEGMENTER, seed=1)
    for head in ("classifier.low_classifier.bias", "classifier.high_classifier.bias"):
        state_dict[head].fill_(-20.0)
        state_dict[head][[0, 15]] = 0.0
    return state_dict


def test_segmentation_classes_region_and_compare(app, torch_home: Path) -> None:
    _place(SEGMENTER, _two_class_segmenter())
    at = _start(app, SEGMENTER)
    classes = at.selectbox(key=state.TARGET)
    assert classes.options and any("person" in o for o in classes.options)
    view = at.session_state[state.VIEW]
    assert view.target.mask is not None and (prediction_picture(view) != view.picture).any()
    assert _shown(at).method == "gradcam" and _non_trivial(_latest(at))
    assert _non_trivial(_pick_method(at, "gradient", "gradient"))
    # a class restricted to a rectangle: rectangle ∧ predicted mask
    at.toggle(key=state.REGION_ON).set_value(True).run()
    h, w = view.picture.shape[:2]
    at.slider(key=state.REGION_X).set_value((0, w // 2)).run()
    region_view = at.session_state[state.VIEW]
    assert "inside (0," in region_view.target_label and region_view.region[2] == w // 2
    mask = np.asarray(region_view.target.mask)
    assert mask[:, w // 2 :].sum() == 0 and mask.sum() > 0
    assert _non_trivial(_shown(at))
    # drawn on the sidebar's picture: a box sets the rectangle, a lasso's outline is the region
    assert at.sidebar.get("plotly_chart")
    box = {"x": [w // 4, w], "y": [0, h]}
    at.session_state[state.REGION_DRAW] = {"selection": {"box": [box], "lasso": []}}
    at.run()
    assert at.slider(key=state.REGION_X).value == (w // 4, w)
    assert at.slider(key=state.REGION_Y).value == (0, h)
    lasso = {"x": [0, w, 0], "y": [0, 0, h]}
    at.session_state[state.REGION_DRAW] = {"selection": {"box": [], "lasso": [lasso]}}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    drawn_view = at.session_state[state.VIEW]
    drawn = np.asarray(drawn_view.target.mask) > 0
    rows, cols = np.indices((h, w))
    triangle = (cols + 0.5) / w + (rows + 0.5) / h < 1
    predicted_here = np.asarray(drawn_view.predictions[drawn_view.target_index].mask) > 0.5
    assert drawn.any() and np.array_equal(drawn, triangle & predicted_here)
    # a rectangle holding none of the class: nothing to explain, said plainly
    predicted = np.asarray(region_view.predictions[region_view.target_index].mask) > 0.5
    empty = next(
        (
            (x, y)
            for y in range(0, h - 8, 8)
            for x in range(0, w - 8, 8)
            if not predicted[y : y + 8, x : x + 8].any()
        ),
        None,
    )
    assert empty is not None, "the two-class segmenter leaves some 8x8 cell without the class"
    at.slider(key=state.REGION_X).set_value((empty[0], empty[0] + 8))
    at.slider(key=state.REGION_Y).set_value((empty[1], empty[1] + 8)).run()
    assert not at.exception
    assert "Nothing to explain: no pixel inside the rectangle" in texts(at)
    assert at.session_state[state.VIEW].target is None
    at.toggle(key=state.REGION_ON).set_value(False).run()
    _compare_three_methods(at)


def _bytes(state_dict: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    return buffer.getvalue()


def _salient_state() -> dict[str, torch.Tensor]:
    """Random U²-Net-small whose fused logit is shifted so that about half of the sample photo is salient."""
    torch.manual_seed(0)
    engine = sc.Engine(device="cpu")
    model = engine.load_model(SALIENT, weights=None)
    logits = engine.forward(model, model.preprocess(_photo()))
    state_dict = {k: v.clone() for k, v in model.module.state_dict().items()}
    state_dict["outconv.bias"] -= logits.median()
    return state_dict


def test_salient_object_weights_upload_region_and_reference(app, torch_home: Path) -> None:
    at = _start(app, SALIENT)
    said = texts(at)
    assert "has no weights on this machine" in said and "u2netp.pth" in said and "xuebinqin/U-2-Net" in said
    assert "Download the weights" not in [b.label for b in at.button]
    uploader = at.file_uploader(key=f"act.weights_file.{SALIENT}")
    uploader.set_value(("u2netp.pth", b"not a weights file", "application/octet-stream")).run()
    assert not at.exception
    assert "u2netp.pth was not loaded" in texts(at)
    good = _salient_state()
    at.file_uploader(key=f"act.weights_file.{SALIENT}").set_value(
        ("my_u2netp.pth", _bytes(good), "application/octet-stream")
    ).run()
    assert not at.exception, [e.value for e in at.exception]
    view = at.session_state[state.VIEW]
    assert view.weights.startswith("file:") and "my_u2netp.pth" in texts(at)
    assert not list(Path(torch_home).rglob("*.pth"))  # nothing was placed in the cache folder
    assert isinstance(view.target, sc.MaskTarget) and (prediction_picture(view) != view.picture).any()
    assert _latest(at).method in ("gradcam", "spectral_residual")
    assert any(
        r.method == "gradcam" and _non_trivial(r) for r in at.session_state[state.RESULTS]._items.values()
    )
    captions = [c for image in at.main.image for c in image.captions]
    assert any("Spectral residual" in c for c in captions) and any(
        "salient-object probability" in c for c in captions
    )
    _pick_method(at, "gradient", "gradient")
    assert any(
        r.method == "gradient" and _non_trivial(r) for r in at.session_state[state.RESULTS]._items.values()
    )


def test_no_salient_region_is_said_not_raised(app, torch_home: Path) -> None:
    silent = _state(SALIENT, seed=0)
    silent["outconv.bias"].fill_(-1000.0)  # nothing is salient
    _place(SALIENT, silent)
    at = app()
    at.button(key=f"act.sample.{PHOTO}").click().run()
    before = computed(at)
    at.selectbox(key=state.MODEL).set_value(SALIENT).run()
    assert not at.exception
    assert "predicts no salient region" in texts(at)
    assert at.session_state[state.VIEW].target is None
    assert computed(at) == before + 1  # only the model-free reference ran


def test_missing_and_unreadable_detector_weights_say_so(app, torch_home: Path) -> None:
    at = _start(app, DETECTOR)
    said = texts(at)
    assert "has no weights on this machine" in said and _weights_path(DETECTOR).name in said
    assert str(_weights_path(DETECTOR).parent) in said
    assert "Use the bundled demo model" in [b.label for b in at.button]
    at.button(key="act.random").click().run()
    assert not at.exception and "detects nothing useful" in texts(at)
    at.button(key="act.pretrained").click().run()
    _place(DETECTOR, b"\x80\x02 this is not a state dict")
    st.cache_data.clear()  # the model list is re-read (every 30 s in the app)
    at.run()
    assert not at.exception
    said = texts(at)
    assert "could not be loaded" in said and "Use the bundled demo model" in [b.label for b in at.button]
