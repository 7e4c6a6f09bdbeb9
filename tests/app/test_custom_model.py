"""The sidebar's "Your model": a timm architecture with random init, a torchvision architecture with a
fine-tuned-style checkpoint and class names, and refused files, through AppTest."""

from __future__ import annotations

import io
import json
import pickle

import torch
import torchvision
from app_helpers import texts

import saliency_core as sc
from ui import display, export, state


def _load(at, source: str, architecture: str, weights: str, classes: int = 0):
    at.segmented_control(key=state.MODEL_SOURCE).set_value("Your model").run()
    at.segmented_control(key=state.CUSTOM_SOURCE).set_value(source).run()
    at.selectbox(key=state.custom_architecture(source)).set_value(architecture)
    at.segmented_control(key=state.CUSTOM_WEIGHTS).set_value(weights)
    at.number_input(key=state.CUSTOM_CLASSES).set_value(classes)
    return at


def _submit(at):
    next(b for b in at.button if b.label == "Load").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _gradcam_results(at) -> list:
    return [r for _, r in at.session_state[state.RESULTS].matching(()) if r.method == "gradcam"]


def test_a_timm_model_with_random_init_is_explained_like_any_other(app) -> None:
    at = _submit(_load(app(), "timm", "resnet18", "Random init"))
    view = at.session_state[state.VIEW]
    assert view.model.id == "timm:resnet18" and view.weights.startswith("custom:random")
    assert "random" in texts(at).lower()
    found = _gradcam_results(at)  # Explore's default ran by itself on the new model
    assert found, texts(at)
    expected = sc.attribute(view.model, view.x, "gradcam", view.target, layer=found[-1].params["layer"])
    assert found[-1].map.shape == tuple(view.x.shape[-2:])
    assert torch.allclose(torch.from_numpy(found[-1].map), expected.map, atol=1e-6)


def _checkpoint(prefix: str = "module.") -> tuple[bytes, torch.nn.Module]:
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None, num_classes=7).eval()
    buffer = io.BytesIO()
    torch.save({f"{prefix}{k}": v for k, v in net.state_dict().items()}, buffer)
    return buffer.getvalue(), net


NAMES = ["ant", "bee", "cat", "dog", "eel", "fox", "gnu"]


def test_a_fine_tuned_checkpoint_with_class_names_loads_and_explains(app) -> None:
    data, net = _checkpoint()
    at = _load(app(), "torchvision", "resnet18", "Checkpoint file")
    at.file_uploader(key=state.CUSTOM_CHECKPOINT).set_value(
        ("finetuned.pth", data, "application/octet-stream")
    )
    at.file_uploader(key=state.CUSTOM_NAMES).set_value(
        ("classes.txt", "\n".join(NAMES).encode(), "text/plain")
    )
    _submit(at)
    view = at.session_state[state.VIEW]
    assert view.model.id == "torchvision:resnet18" and view.model.categories == NAMES
    assert {p.label for p in view.predictions} <= set(NAMES) and len(view.predictions) == 7
    with torch.no_grad():  # the weights are the checkpoint's: the same logits as the saved module
        assert torch.allclose(view.model.module(view.x), net(view.x), atol=1e-5)
    assert _gradcam_results(at)
    source = view.model.source_info()
    assert source["source"] == "torchvision" and source["num_classes"] == 7


def test_refused_files_say_why_and_keep_the_model_in_use(app) -> None:
    at = _submit(_load(app(), "timm", "resnet18", "Random init"))
    before = at.session_state[state.VIEW].model.id

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    cases = {
        "empty.pth": b"",
        "code.pth": pickle.dumps(Payload()),
        "notes.pth": json.dumps({"not": "weights"}).encode(),
    }
    for name, data in cases.items():
        at = _load(at, "torchvision", "resnet18", "Checkpoint file")
        at.file_uploader(key=state.CUSTOM_CHECKPOINT).set_value((name, data, "application/octet-stream"))
        _submit(at)
        said = texts(at)
        assert "torchvision:resnet18 was not loaded" in said, (name, said)
        assert at.session_state[state.VIEW].model.id == before, name


def test_a_share_link_reopens_your_model_and_the_card_records_its_source(app) -> None:
    at = _submit(_load(app(), "timm", "resnet18", "Random init", classes=5))
    assert at.query_params.get("model") in ("timm:resnet18", ["timm:resnet18"])  # the address bar's link
    link = {
        "sample": "scene_00",
        "model": "timm:resnet18",
        "weights": "random",
        "classes": "5",
        "method": "gradcam",
    }
    again = app(query=link)
    view = again.session_state[state.VIEW]
    assert view.model.id == "timm:resnet18" and len(view.model.categories) == 5
    assert view.weights == at.session_state[state.VIEW].weights  # the same model, the same cached maps
    card = export.card(view, _gradcam_results(again)[-1:], display.DEFAULTS)
    assert card["model"]["source"]["source"] == "timm" and card["model"]["source"]["num_classes"] == 5
    bad = app(query={**link, "model": "timm:no_such_net"})
    assert "model 'timm:no_such_net'" in texts(bad)


def test_a_timm_vit_offers_its_whole_module_tree_with_token_grids(app) -> None:
    at = _submit(_load(app(), "timm", "vit_tiny_patch16_224", "Random init"))
    view = at.session_state[state.VIEW]
    assert view.model.id == "timm:vit_tiny_patch16_224"
    found = _gradcam_results(at)  # Explore's default ran on the ViT's last block norm, tokens as 14×14
    assert found and found[-1].params["layer"] == "blocks.11.norm1", texts(at)
    expected = sc.attribute(view.model, view.x, "gradcam", view.target, layer="blocks.11.norm1")
    assert torch.allclose(torch.from_numpy(found[-1].map), expected.map, atol=1e-6)
    picker = at.selectbox(key=state.param("gradcam", "layer"))
    names = [n for n, _ in view.model.layer_tree(view.x)]
    assert len(picker.options) == len(names) > 200  # the whole tree, not the four suggestions
    assert picker.options[0].startswith("★ blocks.11.norm1 · 197 tokens × 192 → 192×14×14")
    picker.set_value("head").run()
    assert not at.exception
    assert "cannot be read as a spatial grid" in texts(at)
    at.selectbox(key=state.param("gradcam", "layer")).set_value("blocks.3.mlp.fc1").run()
    assert not at.exception, [e.value for e in at.exception]
    mine = [r for r in _gradcam_results(at) if r.params["layer"] == "blocks.3.mlp.fc1"]
    assert mine, texts(at)
    expected = sc.attribute(view.model, view.x, "gradcam", view.target, layer="blocks.3.mlp.fc1")
    assert torch.allclose(torch.from_numpy(mine[-1].map), expected.map, atol=1e-6)
