"""Share links (query parameters) and exports (PNG, .npz, JSON card) of the Explore view."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
from app_helpers import demo_weights, texts
from PIL import Image

import saliency_core as sc
from saliency_core.cli import main
from ui import display, export, results, state


def test_the_address_bar_carries_the_share_link(app) -> None:
    at = app()
    query = dict(at.query_params)
    scene = at.session_state[state.IMAGE].sample_id
    assert {
        "sample": scene,
        "model": "shapes_demo",
        "target": "0",
        "method": "gradcam",
    }.items() <= query.items()
    assert query["p.layer"] == "stage4"
    assert f"sample={scene}" in at.code[0].value  # the link shown under "Share this view"


def test_opening_a_link_reproduces_the_view(app) -> None:
    link = {
        "sample": "scene_01",
        "model": "shapes_demo",
        "target": "2",
        "method": "edges_sobel",
        "p.sigma": "2.5",
        "p.ksize": "5",
        "cmap": "viridis",
        "alpha": "0.3",
    }
    if demo_weights() == "random":
        link["weights"] = "random"
    at = app(query=link)
    assert at.session_state[state.IMAGE].sample_id == "scene_01"
    assert at.session_state[state.TARGET] == 2
    assert at.session_state[state.METHOD] == "edges_sobel"
    assert at.session_state["param.edges_sobel.sigma"] == 2.5
    assert at.session_state["param.edges_sobel.ksize"] == 5
    assert (at.session_state[state.CMAP], at.session_state[state.ALPHA]) == ("viridis", 0.3)
    assert "edges_sobel" in dict(at.query_params)["method"]
    assert len(at.main.image) == 2


def test_a_link_to_something_missing_says_so(app) -> None:
    at = app(query={"sample": "scene_01", "method": "no_such_method", "p.sigma": "x"})
    assert "method 'no_such_method'" in texts(at)
    assert at.session_state[state.IMAGE].sample_id == "scene_01"


def test_export_card_png_and_npz(app) -> None:
    at = app()
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["PNG of the view", "Raw maps (.npz)", "JSON card"]
    view = at.session_state[state.VIEW]
    _, result = at.session_state[state.RESULTS].matching(view.base_key())[-1]  # the most recent
    shown = display.Display(cmap="jet")

    card = json.loads(export.card_bytes(export.card(view, [result], shown)))
    sample = next(s for s in sc.list_samples() if s.id == view.image.sample_id)
    assert card["image"]["sha256"] == hashlib.sha256(sample.path.read_bytes()).hexdigest()
    assert card["model"]["id"] == "shapes_demo" and card["model"]["weights"] in ("default", "random")
    assert card["target"] == {
        "index": 0,
        "label": view.target_label,
        "score": view.target.score,
        "class_index": view.target.index,
    }
    assert card["method"] == {"id": "gradcam", "title": "Grad-CAM", "params": {"layer": "stage4"}}
    assert card["passes"] == {"forward": result.forward_passes, "backward": result.backward_passes}
    assert card["timings"]["seconds"] >= 0 and "seed" in card
    assert {"saliency_core", "torch", "torchvision", "streamlit"} <= card["versions"].keys()
    assert card["metrics"] == {}  # filled by pages that evaluate maps
    assert card["display"]["cmap"] == "jet"

    with Image.open(io.BytesIO(export.view_picture_png(view, result, shown))) as png:
        assert png.format == "PNG" and png.width > 3 * 224 and png.height > 224

    with np.load(io.BytesIO(export.maps_npz(view, [result], shown))) as npz:
        np.testing.assert_array_equal(npz["map_0"], result.map)
        assert npz["shown_0"].min() >= 0 and npz["shown_0"].max() <= 1
        assert npz["image"].shape == (224, 224, 3) and list(npz["labels"]) == ["Grad-CAM"]
        assert json.loads(str(npz["card"]))["method"]["id"] == "gradcam"


def test_the_cli_card_of_the_same_map_reads_like_the_app_card(app, tmp_path, capsys) -> None:
    """One builder (saliency_core.card): the CLI's card of the view's map has the app card's fields and
    values, less what only the app knows (display settings) and how each run went (page, timings)."""
    at = app()
    view = at.session_state[state.VIEW]
    _, result = at.session_state[state.RESULTS].matching(view.base_key())[-1]
    ours = json.loads(export.card_bytes(export.card(view, [result], display.DEFAULTS)))
    weights = "none" if view.weights == "random" else "default"
    args = ["explain", view.image.sample_id, "--weights", weights, "--out", str(tmp_path)]
    assert main([*args, "--target", str(view.target.index)]) == 0
    cli = json.loads((tmp_path / view.image.sample_id / f"{result.method}.json").read_text())
    assert set(ours) - set(cli) == {"display"} and set(cli) - set(ours) == set()
    assert cli["page"] == "cli" and cli["image"].pop("path").endswith(f"{view.image.sample_id}.png")
    assert cli["image"] == ours["image"] and cli["model"] == ours["model"] and cli["target"] == ours["target"]
    assert cli["method"] == ours["method"] and cli["seed"] == ours["seed"]
    run = ("timings", "passes", "device")  # how this run went (the CLI's may come from the cache)
    assert {k: v for k, v in cli["maps"][0].items() if k not in run} == {
        k: v for k, v in ours["maps"][0].items() if k not in run
    }


def test_results_are_keyed_by_everything_that_changes_a_map(app) -> None:
    at = app()
    view = at.session_state[state.VIEW]
    gradcam = sc.list_methods(task="classification")
    info = next(m for m in gradcam if m.id == "gradcam")
    key = results.request_key(view, info, {"layer": "stage4"})
    assert key[:3] == (view.image.digest, "shapes_demo", view.weights)
    assert results.request_key(view, info, {"layer": "stage3"}) != key
    assert results.request_key(view, info, {"layer": "stage4", "batch_size": 8}) == key
