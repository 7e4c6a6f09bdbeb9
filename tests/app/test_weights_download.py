"""Downloading missing weights from the sidebar (a file URL mirror stands in for the weights servers):
your timm model's pretrained weights arrive and the model is used; a bad download says why and keeps
the session; offline, the sidebar says at once that downloads are off."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from app_helpers import texts
from safetensors.torch import save_file

import saliency_core as sc
from saliency_core.models.download import MIRROR_ENV
from ui import state

HUB_FILE = "timm--timm--resnet18.a1_in1k--model.safetensors"


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    served = tmp_path / "mirror"
    served.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv(MIRROR_ENV, served.as_uri())
    monkeypatch.delenv("SALIENCY_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return served


def _button(at, label: str):
    return next(b for b in at.button if b.label == label)


def test_your_timm_model_downloads_its_weights_and_is_used(app, mirror: Path) -> None:
    torch.manual_seed(5)
    weights = {k: v.contiguous() for k, v in timm.create_model("resnet18").state_dict().items()}
    save_file(weights, str(mirror / HUB_FILE))
    at = app()
    at.segmented_control(key=state.MODEL_SOURCE).set_value("Your model").run()
    at.segmented_control(key=state.CUSTOM_SOURCE).set_value("timm").run()
    at.selectbox(key=state.custom_architecture("timm")).set_value("resnet18")
    at.segmented_control(key=state.CUSTOM_WEIGHTS).set_value("Pretrained")
    _button(at, "Load").click().run()
    assert "timm:resnet18 was not loaded" in texts(at)  # not on disk yet: the download is offered
    _button(at, "Download the weights").click().run()
    assert not at.exception, [e.value for e in at.exception]
    view = at.session_state[state.VIEW]
    assert view.model.id == "timm:resnet18" and view.weights.startswith("custom:default")
    assert "was not loaded" not in texts(at)
    loaded = view.model.module.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in weights.items())
    assert len(view.model.categories) == 1000 and view.predictions


def test_a_failed_download_says_why_and_keeps_the_session(app, mirror: Path) -> None:
    (mirror / "resnet18-f37072fd.pth").write_bytes(b"not the published file" * 1000)
    at = app()
    at.selectbox(key=state.MODEL).set_value("resnet18").run()
    assert "has no weights on this machine" in texts(at)
    _button(at, "Download the weights").click().run()
    assert not at.exception, [e.value for e in at.exception]
    said = texts(at)
    assert "does not match its published checksum" in said
    assert "Try the download again" in [b.label for b in at.button]
    assert "Use the bundled demo model" in [b.label for b in at.button]
    assert not list((Path(sc.models.weights.hub_checkpoints_dir())).glob("resnet18*"))


def test_offline_says_at_once_that_downloads_are_off(app, mirror: Path, monkeypatch) -> None:
    monkeypatch.setenv("SALIENCY_OFFLINE", "1")
    at = app()
    at.selectbox(key=state.MODEL).set_value("resnet18").run()
    assert "Downloading is off: this server is set to work offline" in texts(at)
    assert "Download the weights" not in [b.label for b in at.button]
