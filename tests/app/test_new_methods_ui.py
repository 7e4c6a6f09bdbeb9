"""Issue 13's methods in the pages: the families the model can use, a run of each kind, Compare and
Evaluate offering them, and Learn saying which cannot explain the current model and why."""

from __future__ import annotations

from app_helpers import computed, texts

import saliency_core as sc
from ui import state

COMPARE = "pages/1_Compare.py"
EVALUATE = "pages/2_Evaluate.py"
LEARN = "pages/3_Learn.py"
NEW = {"lime", "kernel_shap", "feature_ablation", "xrai", "deeplift", "deeplift_shap", "gradient_shap"}
NEW |= {"lrp", "guided_ig", "blur_ig", "ablation_cam", "fullgrad"}
ATTENTION = {"attention_rollout", "chefer", "legrad"}


def _families(at) -> list[str]:
    return list(at.button_group(key=state.FAMILY).options)


def test_the_demo_cnn_offers_relevance_and_regions_but_no_attention_methods(app) -> None:
    at = app()
    families = [str(f) for f in _families(at)]
    assert {"Relevance propagation", "Regions and superpixels"} <= set(families)
    assert "Transformer attention" not in families
    # LRP is one pass: it runs by itself when picked
    at.button_group(key=state.FAMILY).set_value("propagation").run()
    before = computed(at)
    at.selectbox(key=state.METHOD).set_value("lrp").run()
    assert not at.exception
    assert computed(at) == before + 1
    assert "Layer-wise Relevance Propagation (LRP) overlay" in texts(at)
    # LIME makes hundreds of passes: it waits for Run, with its cost, then runs
    at.button_group(key=state.FAMILY).set_value("region").run()
    at.selectbox(key=state.METHOD).set_value("lime").run()
    assert "Press **Run**" in texts(at) and "256 forward" in texts(at)
    at.number_input(key="param.lime.samples").set_value(32).run()
    at.button(key="act.run").click().run()
    assert not at.exception
    assert "LIME overlay" in texts(at)


def test_the_demo_vit_offers_the_attention_methods_and_rollout_runs(app) -> None:
    at = app()
    at.session_state[state.WEIGHTS] = {**at.session_state[state.WEIGHTS], "shapes_vit_demo": "default"}
    at.selectbox(key=state.MODEL).set_value("shapes_vit_demo").run()
    assert not at.exception
    at.button_group(key=state.FAMILY).set_value("attention").run()
    options = set(at.selectbox(key=state.METHOD).options)
    assert {"Attention rollout", "Transformer attribution (Chefer)", "LeGrad"} <= options
    at.selectbox(key=state.METHOD).set_value("attention_rollout").run()
    if "Press **Run**" in texts(at):
        at.button(key="act.run").click().run()
    assert not at.exception
    assert "Attention rollout overlay" in texts(at)
    assert "lrp" not in {m.id for m in sc.list_methods(model=at.session_state[state.VIEW].model)}


def _offered(options: list[str]) -> set[str]:
    """Method ids behind widget options shown as "Title" or "Title (Family)"."""
    return {
        m.id for m in sc.list_methods() for o in options if o == m.title or str(o).startswith(m.title + " (")
    }


def test_compare_and_evaluate_offer_the_new_methods(app) -> None:
    at = app(page=COMPARE)
    (methods,) = [w for w in at.multiselect if w.key == state.COMPARE_METHODS]
    offered = _offered(list(methods.options)) | set(methods.options)
    assert offered >= NEW and not ATTENTION & offered
    at.switch_page(EVALUATE).run()
    assert not at.exception
    offered = set()
    for widget in at.multiselect:
        offered |= _offered(list(widget.options))
    assert offered >= NEW and not ATTENTION & offered


def test_learn_lists_the_new_methods_and_says_why_attention_is_missing(app) -> None:
    at = app(page=LEARN)
    said = texts(at)
    assert "Not listed for shapes_demo" in said and "needs a vision transformer" in said
    at.selectbox(key="learn.method").set_value("kernel_shap").run()
    assert not at.exception
    assert "Kernel SHAP" in texts(at) and "Lundberg" in texts(at)
