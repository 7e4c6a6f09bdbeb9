"""The Evaluate page through AppTest: faithfulness curves, pointing games, a sanity check, activation
maximisation, and the metrics in the JSON cards (Evaluate's and Explore's). Small step counts throughout."""

from __future__ import annotations

import json

from app_helpers import texts

from ui import export, state
from ui.evaluate import common as evaluate_common

EVALUATE = "pages/2_Evaluate.py"
SECTION = "evaluate.section"


def _open(at, section: str):
    at.session_state[SECTION] = section
    return at.run()


def _card_metrics(at) -> dict:
    """The metrics of the page's JSON card, as its preview shows them."""
    assert at.json, "no card preview: nothing evaluated?"
    return json.loads(at.json[0].value)


def test_faithfulness_curves_beat_random_and_go_into_both_cards(app, monkeypatch) -> None:
    at = app(page=EVALUATE)  # Explore computed Grad-CAM first
    assert at.tabs and [t.label for t in at.tabs] == list(
        ("Faithfulness", "Localisation", "Sanity checks", "Activation maximisation")
    )
    at.multiselect(key="evaluate.faith.methods").set_value(["gradcam", "gradient"]).run()
    at.slider(key="evaluate.faith.steps").set_value(10).run()
    assert "6 curves to compute" in texts(at)
    at.button(key="act.evaluate.faith.pending").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    charts = at.main.get("plotly_chart")
    assert len(charts) == 2  # deletion and insertion, each with every method and the random order
    assert all("random order" in c.proto.spec for c in charts)
    table = at.dataframe[0].value
    auc = dict(zip(table["Method"], table["Deletion AUC ↓"]))
    assert set(auc) == {"Grad-CAM", "Gradient (saliency)", "Random order (reference)"}
    assert auc["Grad-CAM"] < auc["Random order (reference)"], auc

    curves = _card_metrics(at)["faithfulness"]
    assert {(c["label"], c["kind"]) for c in curves} >= {
        ("Grad-CAM", "deletion"),
        ("Random order", "insertion"),
    }
    assert all(c["steps"] == 10 and c["substrate"] == "blur" and len(c["scores"]) == 11 for c in curves)

    # Explore's card of the Grad-CAM map carries the curves of that map (and the reference), nothing else.
    cards = []
    real = export.card
    monkeypatch.setattr(export, "card", lambda *a, **k: cards.append(k.get("metrics")) or real(*a, **k))
    at.switch_page("app.py").run()
    assert at.session_state[state.METHOD] == "gradcam" and cards
    methods = {c["method"] for c in cards[-1]["faithfulness"]}
    assert methods == {"gradcam", "random"}

    # Back on Evaluate, the curves are still there: nothing to compute, the settings kept.
    stored = len(at.session_state[evaluate_common.STORE])
    at.switch_page(EVALUATE).run()
    assert at.slider(key="evaluate.faith.steps").value == 10
    assert len(at.main.get("plotly_chart")) == 2 and "curves to compute" not in texts(at)
    assert len(at.session_state[evaluate_common.STORE]) == stored


def test_pointing_game_hits_the_mask_and_a_user_box_works(app) -> None:
    at = _open(app(page=EVALUATE), "Localisation")
    assert at.session_state[state.IMAGE].sample_id.startswith("scene_")  # a synthetic scene with a mask
    at.multiselect(key="evaluate.loc.methods").set_value(["gradcam"]).run()
    assert at.slider(key="evaluate.loc.tolerance").value == 15
    assert at.button_group(key="evaluate.loc.region").value == "Ground-truth mask"
    assert "Grad-CAM: hit" in texts(at)
    row = at.dataframe[0].value.iloc[0]
    assert row["Pointing game"] == "hit" and 0.2 < row["Energy inside"] <= 1.0

    at.button_group(key="evaluate.loc.region").set_value("Box").run()
    # The box starts as the mask's bounding box: Grad-CAM still hits it.
    assert at.dataframe[0].value.iloc[0]["Pointing game"] == "hit"
    for name, value in zip(("x0", "y0", "x1", "y1"), (0, 0, 20, 20)):  # a corner far from the object
        at.number_input(key=f"evaluate.loc.box.{name}").set_value(value)
    at.run()
    assert not at.exception
    row = at.dataframe[0].value.iloc[0]
    assert row["Pointing game"] == "miss" and row["Energy inside"] < 0.1
    assert "box (0, 0, 20, 20)" in texts(at)
    pointing = _card_metrics(at)["pointing"]
    assert pointing["box"] == [0, 0, 20, 20] and pointing["tolerance_px"] == 15
    assert pointing["methods"][0]["hit"] is False
    at.number_input(key="evaluate.loc.box.x1").set_value(0).run()  # an empty box: a plain message
    assert "x0 < x1" in texts(at) and not at.exception


def test_cascading_randomisation_shows_stages_and_the_similarity_curve(app) -> None:
    at = _open(app(page=EVALUATE), "Sanity checks")
    assert at.selectbox(key="evaluate.sanity.method").value == "gradcam"
    assert "private copy of the model" in texts(at)
    at.multiselect(key="evaluate.sanity.stages.shapes_demo").set_value(["fc", "stage4"]).run()
    assert "3 maps" in texts(at)
    at.button(key="act.evaluate.sanity.pending").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    captions = [c for image in at.main.image for c in image.captions]
    assert captions[0].startswith("original") and captions[1].startswith("up to fc · ρ")
    assert len(at.main.get("plotly_chart")) == 1  # Spearman and SSIM per stage
    sanity = _card_metrics(at)["sanity"]
    assert sanity[0]["kind"] == "cascading" and sanity[0]["stages"] == ["original", "fc", "stage4"]
    assert sanity[0]["spearman"][0] == 1.0 and sanity[0]["model_copy"] is True

    # Switching sections and back shows the stored result without recomputing it.
    store = at.session_state[evaluate_common.STORE]
    count = len(store)
    _open(at, "Faithfulness")
    _open(at, "Sanity checks")
    assert len(at.main.get("plotly_chart")) == 1 and len(store) == count


def test_activation_maximisation_makes_an_image(app) -> None:
    at = _open(app(page=EVALUATE), "Activation maximisation")
    assert at.button_group(key="evaluate.am.objective").value == "Class score"
    at.slider(key="evaluate.am.steps").set_value(3).run()
    at.button(key="act.evaluate.am.pending").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    images = [image for image in at.main.image if any("Maximises class" in c for c in image.captions)]
    assert len(images) == 1
    assert len(at.main.get("plotly_chart")) == 1  # the objective per step
    runs = _card_metrics(at)["activation_maximization"]
    assert runs[0]["settings"]["steps"] == 3 and len(runs[0]["scores"]) == 3

    # A channel objective on a layer; a channel that does not exist gets a plain message.
    at.button_group(key="evaluate.am.objective").set_value("Layer channel").run()
    at.number_input(key="evaluate.am.channel").set_value(100_000).run()
    at.button(key="act.evaluate.am.pending").click().run()
    assert not at.exception
    assert any("channels" in e.value for e in at.error)
