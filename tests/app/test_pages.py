"""Compare, Learn and Settings pages through AppTest."""

from __future__ import annotations

from app_helpers import computed, texts

import saliency_core as sc
from ui import state

COMPARE = "pages/1_Compare.py"
LEARN = "pages/3_Learn.py"
SETTINGS = "pages/5_Settings.py"


def test_compare_methods_grid_agreement_and_difference(app) -> None:
    at = app(page=COMPARE)
    chosen = at.multiselect(key="compare.methods").value
    assert len(chosen) >= 2
    assert len(at.main.image) == len(chosen) + 2  # the grid, then maps A and B of the difference view
    charts = at.main.get("plotly_chart")
    assert len(charts) == 3  # Spearman, SSIM and the difference heatmap
    assert "Mean absolute difference" in texts(at)
    assert [b.label for b in at.get("download_button")] == ["PNG of the grid", "Raw maps (.npz)", "JSON card"]
    # the sidebar (image, model, target) is shared by every page
    assert at.sidebar.selectbox(key=state.MODEL).value == "shapes_demo"


def test_compare_reuses_explore_maps_and_display_toggles_do_not_recompute(app) -> None:
    at = app()  # Explore computes Grad-CAM
    at.button_group(key=state.FAMILY).set_value("reference").run()  # and Sobel edges
    at.switch_page(COMPARE).run()
    assert at.multiselect(key="compare.methods").value == ["gradcam", "edges_sobel"]
    assert computed(at) == 2  # both came from the session's results
    at.toggle(key=state.SHARED).set_value(True).run()
    at.button_group(key="compare.show").set_value("Map only").run()
    at.selectbox(key="compare.diff_b").set_value(0).run()
    assert not at.exception
    assert computed(at) == 2


def test_compare_one_method_over_layers(app) -> None:
    at = app(page=COMPARE)
    at.button_group(key="compare.mode").set_value("One method, several settings").run()
    assert at.selectbox(key="compare.sweep_method").value == "gradcam"
    assert at.selectbox(key="compare.sweep_param.gradcam").value == "layer"
    layers = at.multiselect(key="compare.sweep_values.gradcam.layer").value
    assert layers == sc.load_model("shapes_demo", weights=None).layers()
    assert not at.exception
    captions = [c for image in at.main.image for c in image.captions]
    assert [f"Grad-CAM · layer={layer}" for layer in layers] == captions[: len(layers)]


def test_compare_numeric_sweep_parses_values_and_reports_bad_ones(app) -> None:
    at = app(page=COMPARE)
    at.button_group(key="compare.mode").set_value("One method, several settings").run()
    at.selectbox(key="compare.sweep_method").set_value("occlusion").run()
    values = at.text_input(key="compare.sweep_values.occlusion.patch")
    assert values.value == "16, 32, 64"  # half, current and double the default
    values.set_value("8, 16, abc, 9999").run()
    said = texts(at)
    assert "'abc' is not an integer" in said and "9999 is outside" in said
    assert "2 of 2 maps still to compute" in said  # occlusion waits for the button
    assert not at.exception


def test_learn_explains_a_method_with_a_live_example(app) -> None:
    at = app(page=LEARN)
    assert at.selectbox(key="learn.method").value == "guided_backprop"
    assert len(at.latex) == 1
    said = texts(at)
    assert "edge detector" in said and "Sobel" in said
    assert len(at.main.image) == 3  # input, Guided Backprop, Sobel reference
    assert "Agreement with the model-free reference" in said
    at.selectbox(key="learn.method").set_value("occlusion").run()
    assert "Run the example" in [b.label for b in at.button]
    assert "patch" in texts(at) and len(at.latex) == 1
    assert not at.exception


def test_settings_show_device_cache_and_weights(app, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    at = app(page=SETTINGS)
    said = texts(at)
    assert sc.get_engine().describe_device() in said
    metrics = {m.label: m.value for m in at.metric}
    assert {"Entries", "Size", "Hits", "Misses", "Hit rate"} <= metrics.keys()
    table = next(d.value for d in at.dataframe if "Model" in d.value.columns and "Weights" in d.value.columns)
    assert set(table["Model"]) == {m.id for m in sc.list_models()}
    paths = dict(zip(table["Model"], table["File (where it is or would be cached)"]))
    assert paths["resnet18"].startswith(str(tmp_path))
    at.button(key="act.forget").click().run()
    assert "0 maps kept" in texts(at)
