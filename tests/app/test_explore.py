"""Explore page (app.py) through AppTest: sample, upload, target, method, parameters, display, weights."""

from __future__ import annotations

import io

import numpy as np
from app_helpers import computed, texts
from PIL import Image

import saliency_core as sc
from ui import state
from ui.images import ImageChoice


def _png(width: int = 96, height: int = 64) -> bytes:
    array = np.zeros((height, width, 3), np.uint8)
    array[16:48, 20:60] = (240, 200, 30)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _image(at) -> ImageChoice:
    return at.session_state[state.IMAGE]


def _main_images(at) -> int:
    return len(at.main.image)


def test_starts_offline_on_a_sample_and_shows_a_map(app) -> None:
    at = app()
    choice = _image(at)
    first_scene = next(s for s in sc.list_samples() if s.kind == "synthetic")
    assert (choice.source, choice.sample_id) == ("sample", first_scene.id)
    assert at.session_state[state.MODEL] == "shapes_demo"
    assert at.session_state[state.METHOD] == "gradcam"
    assert computed(at) == 1  # Grad-CAM is cheap, so it ran by itself
    assert _main_images(at) == 2  # the input and the overlay
    assert len(at.main.get("plotly_chart")) == 1  # the interactive heatmap
    assert "computed in" in texts(at) or "from the engine cache" in texts(at)
    assert [b.label for b in at.button if b.label == "Run"]


def test_display_changes_never_recompute(app) -> None:
    at = app()
    before, forwards = computed(at), sc.get_engine().forward_count
    at.selectbox(key=state.CMAP).set_value("jet").run()
    at.slider(key=state.ALPHA).set_value(0.8).run()
    at.slider(key=state.CLIP).set_value(95.0).run()
    at.selectbox(key=state.SIGN).set_value("absolute").run()
    at.toggle(key=state.ALPHA_BY_VALUE).set_value(True).run()
    assert not at.exception
    assert computed(at) == before
    assert sc.get_engine().forward_count == forwards
    assert "absolute, jet" in texts(at)


def test_target_change_recomputes_for_the_new_target(app) -> None:
    at = app()
    target = at.selectbox(key=state.TARGET)
    assert target.value == 0 and len(target.options) == 6  # the demo model's six classes
    target.set_value(2).run()
    assert not at.exception
    assert computed(at) == 2
    label = at.session_state[state.VIEW].target_label
    assert f"target: {label}" in texts(at)


def test_method_and_parameter_changes(app) -> None:
    at = app()
    at.button_group(key=state.FAMILY).set_value("reference").run()  # Model-free references
    assert at.session_state[state.METHOD] == "edges_sobel"
    assert computed(at) == 2
    at.slider(key="param.edges_sobel.sigma").set_value(2.5).run()
    assert computed(at) == 3
    at.selectbox(key=state.METHOD).set_value("spectral_residual").run()
    assert computed(at) == 4
    # back to the first map: served from the session's results, not recomputed
    at.session_state["param.edges_sobel.sigma"] = 1.0
    at.selectbox(key=state.METHOD).set_value("edges_sobel").run()
    assert computed(at) == 4
    assert not at.exception


def test_slow_method_waits_for_run_and_shows_its_cost(app) -> None:
    at = app()
    at.button_group(key=state.FAMILY).set_value("perturbation").run()
    assert at.session_state[state.METHOD] == "occlusion"
    assert computed(at) == 1  # occlusion is not started by itself
    assert "forward + 0 backward passes" in texts(at)
    assert "Press **Run**" in texts(at)
    at.slider(key="param.occlusion.patch").set_value(112)
    at.slider(key="param.occlusion.stride").set_value(112).run()  # 2x2 windows: quick
    at.button(key="act.run").click().run()
    assert not at.exception
    assert computed(at) == 2
    assert _main_images(at) == 2


def test_upload_through_file_uploader(app) -> None:
    at = app()
    at.button_group(key=state.SOURCE).set_value("Upload").run()
    at.file_uploader(key="act.upload").set_value(("shapes.png", _png(), "image/png")).run()
    assert not at.exception
    choice = _image(at)
    assert (choice.source, choice.name, choice.width, choice.height) == ("upload", "shapes.png", 96, 64)
    assert computed(at) == 2  # the new image's map
    assert "shapes.png" in texts(at)


def test_bad_upload_says_so_and_keeps_the_previous_image(app) -> None:
    at = app()
    previous = _image(at)
    at.button_group(key=state.SOURCE).set_value("Upload").run()
    at.file_uploader(key="act.upload").set_value(("broken.png", b"\x89PNG not really", "image/png")).run()
    assert not at.exception
    assert "Could not use broken.png" in texts(at)
    assert _image(at).digest == previous.digest
    assert _main_images(at) == 2  # the previous result is still shown


def test_missing_weights_are_named_and_the_demo_offered(app, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torchvision cache: ImageNet weights missing
    at = app()
    at.selectbox(key=state.MODEL).set_value("resnet18").run()
    assert not at.exception
    said = texts(at)
    assert "has no weights on this machine" in said
    assert "resnet18-f37072fd.pth" in said and str(tmp_path / "hub" / "checkpoints") in said
    labels = [b.label for b in at.button]
    assert "Use the bundled demo model" in labels and "Use random weights (teaching only)" in labels
    at.button(key="act.demo").click().run()
    assert at.session_state[state.MODEL] == "shapes_demo"
    assert _main_images(at) == 2


def test_random_weights_are_explicit_and_labelled(app, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    at = app()
    at.selectbox(key=state.MODEL).set_value("resnet18").run()
    at.button(key="act.random").click().run()
    assert not at.exception
    assert "maps are meaningless except for teaching" in texts(at)
    assert at.session_state[state.VIEW].weights == "random"
