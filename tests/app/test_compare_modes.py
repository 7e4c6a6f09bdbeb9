"""Compare's axis labels and its several-targets mode, through pure functions and AppTest."""

from __future__ import annotations

import json

import numpy as np
from app_helpers import texts

import saliency_core as sc
from ui import state
from ui.compare import short_labels

COMPARE = "pages/1_Compare.py"


def test_short_labels_cut_the_shared_start_and_stay_distinct() -> None:
    labels = [f"Grad-CAM · layer=features.{i}.block.conv" for i in (3, 7, 11)]
    common, short = short_labels(labels, limit=22)
    assert common == "Grad-CAM · layer="
    assert short == ["features.3.block.conv", "features.7.block.conv", "features.11.block.conv"]
    # long names are shortened in the middle, so their differing ends survive
    long = [f"Grad-CAM · layer=backbone.body.layer4.{i}.conv3" for i in (0, 1)]
    _, cut = short_labels(long, limit=14)
    assert len(set(cut)) == 2 and all(len(c) <= 14 for c in cut) and cut[0].endswith("0.conv3")
    # labels that still come out alike are numbered
    _, same = short_labels(["RISE · seed=1 (first run)", "RISE · seed=1 (second run)"], limit=8)
    assert same[0] != same[1]
    assert short_labels(["Grad-CAM", "Grad-CAM++"]) == ("", ["Grad-CAM", "Grad-CAM++"])


def _matrices(at) -> list[dict]:
    charts = [json.loads(c.proto.spec) for c in at.main.get("plotly_chart")]
    return [c for c in charts if c["data"][0].get("texttemplate")]


def test_layer_sweep_agreement_matrix_has_a_cell_per_pair(app) -> None:
    at = app(page=COMPARE)
    at.button_group(key=state.COMPARE_MODE).set_value("One method, several settings").run()
    layers = at.multiselect(key="compare.sweep_values.gradcam.layer").value
    assert len(layers) >= 3 and not at.exception
    spearman, ssim = _matrices(at)
    for figure in (spearman, ssim):
        z = np.array(figure["data"][0]["text"], dtype=float)  # the values written in the cells
        assert z.shape == (len(layers), len(layers))
        ticks = figure["layout"]["xaxis"]["ticktext"]
        assert len(set(ticks)) == len(layers)  # distinct names on the axes
        assert not np.allclose(z, 1.0)  # maps of different layers differ
    assert "All maps: Grad-CAM · layer" in texts(at)


def test_several_targets_shows_one_map_per_top_class(app) -> None:
    at = app(page=COMPARE)
    at.button_group(key=state.COMPARE_MODE).set_value("One method, several targets").run()
    assert not at.exception
    assert at.selectbox(key=state.COMPARE_TARGETS_METHOD).value == "gradcam"
    k = at.select_slider(key=state.COMPARE_TARGETS_K).value
    assert k >= 2
    view = at.session_state[state.VIEW]
    model = view.model
    top = model.predict(view.x, top_k=k)
    captions = [c for image in at.main.image for c in image.captions][:k]
    assert [c.split(". ", 1)[1].split(" — ")[0] for c in captions] == [t.describe() for t in top]
    # each tile is the method's map for that class: compare with the library directly
    found = at.session_state[state.RESULTS].matching(view.base_key())
    by_index = {r.target_index: r for _, r in found if r.method == "gradcam"}
    assert sorted(by_index) == list(range(k))
    stored = [by_index[i] for i in range(k)]
    for target, result in zip(top, stored):
        expected = sc.attribute(model, view.x, "gradcam", target).map
        np.testing.assert_allclose(result.map, np.asarray(expected), rtol=1e-4, atol=1e-6)
    # Grad-CAM is class-discriminative: two classes' maps are not the same picture
    assert not np.allclose(stored[0].map, stored[1].map)
