"""Weights: torchvision's cache under TORCH_HOME, clear errors, safe loading of user files."""

from __future__ import annotations

import pickle
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file

import saliency_core as sc


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("SALIENCY_OFFLINE", "1")
    return tmp_path


def _resnet18_state(seed: int = 5) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return torchvision.models.resnet18(weights=None).state_dict()


def test_cached_torchvision_file_is_found_and_loaded(torch_home: Path) -> None:
    info = {m.id: m for m in sc.list_models()}["resnet18"]
    assert not info.weights_available
    expected = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert info.weights_path == str(expected)
    state = _resnet18_state()
    expected.parent.mkdir(parents=True)
    torch.save(state, expected)
    assert {m.id: m for m in sc.list_models()}["resnet18"].weights_available
    model = sc.Engine(device="cpu").load_model("resnet18")
    loaded = model.module.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert not model.module.training


def test_missing_weights_raise_a_message_naming_file_and_folder(torch_home: Path) -> None:
    with pytest.raises(sc.WeightsUnavailable) as err:
        sc.Engine(device="cpu").load_model("resnet50")
    message = str(err.value)
    assert "resnet50-11ad3fa6.pth" in message
    assert str(torch_home / "hub" / "checkpoints") in message
    assert err.value.file_name == "resnet50-11ad3fa6.pth"


def test_failed_download_becomes_weights_unavailable(
    torch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SALIENCY_OFFLINE")

    def no_network(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(sc.WeightsUnavailable, match="could not be downloaded"):
        sc.Engine(device="cpu").load_model("alexnet")


def test_random_init_needs_no_file(torch_home: Path) -> None:
    model = sc.Engine(device="cpu").load_model("resnet18", weights=None)
    assert model.weights == "random" and model.task == "classification"
    assert len(model.categories) == 1000 and model.categories[281] == "tabby"


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_weights_from_a_user_file(tmp_path: Path, suffix: str) -> None:
    state = _resnet18_state(seed=9)
    path = tmp_path / f"mine{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    module = sc.Engine(device="cpu").load_model("resnet18", weights=str(path)).module
    assert torch.equal(module.state_dict()["fc.weight"], state["fc.weight"])


def test_mismatched_files_get_readable_messages(tmp_path: Path) -> None:
    torch.manual_seed(0)
    state = torchvision.models.resnet18(weights=None, num_classes=10).state_dict()
    state.pop("layer1.0.conv1.weight")
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "wrong.pth"
    torch.save(state, path)
    with pytest.raises(sc.InvalidWeights) as err:
        sc.Engine(device="cpu").load_model("resnet18", weights=str(path))
    message = str(err.value)
    assert "1 missing: layer1.0.conv1.weight" in message
    assert "1 unexpected: extra.weight" in message
    assert "fc.weight (file (10, 512), model (1000, 512))" in message


class Payload:
    def __reduce__(self):
        return (print, ("this would run code",))


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    with path.open("wb") as fh:
        pickle.dump({"fc.weight": Payload()}, fh)
    with pytest.raises(sc.InvalidWeights, match=r"Python objects other than tensors"):
        sc.Engine(device="cpu").load_model("resnet18", weights=str(path))


def test_garbage_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "noise.safetensors"
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(sc.InvalidWeights, match=r"Could not read noise\.safetensors"):
        sc.Engine(device="cpu").load_model("resnet18", weights=str(path))
    with pytest.raises(sc.InvalidWeights, match="No weights file"):
        sc.Engine(device="cpu").load_model("resnet18", weights=str(tmp_path / "absent.pt"))


def test_models_load_once_per_process() -> None:
    engine = sc.Engine(device="cpu")
    assert engine.load_model("resnet18", weights=None) is engine.load_model("resnet18", weights=None)


def test_unknown_model() -> None:
    with pytest.raises(sc.UnknownModel, match=r"Known models:.*resnet50"):
        sc.Engine(device="cpu").load_model("resnet51")
