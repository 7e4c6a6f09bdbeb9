"""Checkpoints and class-name files: fine-tuned files load through source ids with their head size and
names (wrappers and prefixes undone), the cache follows the file's content, and every file that cannot
be used is refused with one clear message before anything unsafe is read."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file

import saliency_core as sc
from saliency_core.models import checkpoints

NAMES = ["ant", "bee", "cat", "dog", "eel", "fox", "gnu"]


@pytest.fixture(scope="module")
def tuned() -> torch.nn.Module:
    """A 'fine-tuned' torchvision ResNet-18 with a 7-class head."""
    torch.manual_seed(11)
    return torchvision.models.resnet18(weights=None, num_classes=7).eval()


@pytest.fixture
def classes(tmp_path: Path) -> Path:
    path = tmp_path / "classes.txt"
    path.write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    return path


def _save(tmp_path: Path, name: str, obj: object) -> Path:
    path = tmp_path / name
    torch.save(obj, path)
    return path


@pytest.mark.parametrize("wrap", ["dataparallel", "lightning", "compiled"])
def test_fine_tuned_checkpoint_loads_with_its_head_and_names(tmp_path, tuned, classes, wrap) -> None:
    state = tuned.state_dict()
    payload: object = {
        "dataparallel": {f"module.{k}": v for k, v in state.items()},
        "lightning": {"state_dict": {f"model.{k}": v for k, v in state.items()}, "epoch": 3},
        "compiled": {"model": {f"_orig_mod.{k}": v for k, v in state.items()}},
    }[wrap]
    path = _save(tmp_path, "ckpt.pth", payload)
    model = sc.Engine(device="cpu").load_model("torchvision:resnet18", weights=str(path), categories=classes)
    assert model.spec.num_classes == 7 and model.categories == NAMES  # inferred from fc.weight
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = tuned(x)
        assert torch.allclose(model.forward(x), expected, atol=1e-5)
    top = model.predict(x, top_k=3)
    assert top[0].label == NAMES[int(expected.argmax())] and all(t.label in NAMES for t in top)
    info = model.source_info()
    assert info["weights"] == "ckpt.pth" and info["num_classes"] == 7
    assert info["weights_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info["categories_file"] == "classes.txt"
    assert info["categories_sha256"] == hashlib.sha256(classes.read_bytes()).hexdigest()


def test_timm_checkpoint_head_from_a_safetensors_file(tmp_path) -> None:
    import timm

    torch.manual_seed(2)
    net = timm.create_model("resnet10t", pretrained=False, num_classes=5).eval()
    path = tmp_path / "tuned.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    model = sc.Engine(device="cpu").load_model("timm:resnet10t", weights=path)
    assert model.categories == [f"class {i}" for i in range(5)]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model.forward(x), net(x), atol=1e-5)


def test_the_cache_follows_file_contents_head_size_and_names(tmp_path, tuned, classes) -> None:
    engine = sc.Engine(device="cpu")
    path = _save(tmp_path, "ckpt.pth", tuned.state_dict())
    first = engine.load_model("torchvision:resnet18", weights=str(path))
    assert engine.load_model("torchvision:resnet18", weights=str(path)) is first
    assert engine.load_model("torchvision:resnet18", weights=str(path), categories=classes) is not first
    changed = {k: v.clone() for k, v in tuned.state_dict().items()}
    changed["fc.bias"] += 1.0
    torch.save(changed, path)  # overwritten in place: the same path must not serve the old weights
    second = engine.load_model("torchvision:resnet18", weights=str(path))
    assert second is not first and torch.equal(second.module.fc.bias, changed["fc.bias"])
    assert engine.load_model("torchvision:resnet18", weights=None) is not engine.load_model(
        "torchvision:resnet18", weights=None, num_classes=7
    )


def test_categories_files(tmp_path, tuned) -> None:
    path = _save(tmp_path, "ckpt.pth", tuned.state_dict())
    engine = sc.Engine(device="cpu")
    as_list = tmp_path / "names.json"
    as_list.write_text(json.dumps(NAMES), encoding="utf-8")
    assert (
        engine.load_model("torchvision:resnet18", weights=str(path), categories=as_list).categories == NAMES
    )
    as_map = tmp_path / "map.json"
    as_map.write_text(json.dumps({str(i): n for i, n in reversed(list(enumerate(NAMES)))}), encoding="utf-8")
    assert engine.load_model("torchvision:resnet18", weights=str(path), categories=as_map).categories == NAMES
    wrong = tmp_path / "five.txt"
    wrong.write_text("\n".join(NAMES[:5]), encoding="utf-8")
    with pytest.raises(sc.InvalidParameter, match=r"five\.txt names 5 classes, but the model's head has 7"):
        engine.load_model("torchvision:resnet18", weights=str(path), categories=wrong)
    gap = tmp_path / "gap.json"
    gap.write_text(json.dumps({"0": "a", "2": "c"}), encoding="utf-8")
    with pytest.raises(sc.InvalidParameter, match="index 1 is missing"):
        engine.load_model("torchvision:resnet18", weights=str(path), categories=gap)


def test_unknown_architecture_for_a_file(tmp_path, tuned) -> None:
    path = _save(tmp_path, "ckpt.pth", tuned.state_dict())
    with pytest.raises(sc.UnknownModel, match="Close matches: resnet18"):
        sc.Engine(device="cpu").load_model("torchvision:resnet1", weights=str(path))


def test_a_detection_checkpoint_for_a_classifier(tmp_path, tuned) -> None:
    state = {f"backbone.body.{k}": v for k, v in tuned.state_dict().items() if not k.startswith("fc.")}
    state["rpn.head.conv.0.0.weight"] = torch.zeros(256, 256, 3, 3)
    state["roi_heads.box_predictor.cls_score.weight"] = torch.zeros(91, 1024)
    path = _save(tmp_path, "detector.pth", state)
    with pytest.raises(sc.InvalidWeights, match=r"detection model's checkpoint .* is a classifier"):
        sc.Engine(device="cpu").load_model("torchvision:resnet18", weights=str(path))


def test_a_prefix_that_is_off_is_named(tmp_path, tuned) -> None:
    path = _save(tmp_path, "backbone.pth", {f"backbone.{k}": v for k, v in tuned.state_dict().items()})
    with pytest.raises(sc.InvalidWeights) as err:
        sc.Engine(device="cpu").load_model("torchvision:resnet18", weights=str(path), num_classes=7)
    message = str(err.value)
    assert "keys start with 'backbone.'" in message and "102 missing" in message


def test_a_wrapper_prefix_is_kept_when_it_is_the_architectures_own() -> None:
    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = torch.nn.Linear(2, 2)

    expected = Wrapped().state_dict()
    assert set(checkpoints.fit_prefixes(expected, expected)) == {"model.weight", "model.bias"}
    doubled = {f"module._orig_mod.{k}": v for k, v in expected.items()}
    assert set(checkpoints.fit_prefixes(doubled, expected)) == {"model.weight", "model.bias"}


def test_oversized_empty_and_tensorless_files(tmp_path, tuned, monkeypatch) -> None:
    engine = sc.Engine(device="cpu")
    path = _save(tmp_path, "ckpt.pth", tuned.state_dict())
    monkeypatch.setattr(checkpoints, "MAX_WEIGHTS_BYTES", 1024)
    with pytest.raises(sc.InvalidWeights, match=r"ckpt\.pth is 42\.\d MiB, over the 1\.0 KiB limit"):
        engine.load_model("torchvision:resnet18", weights=str(path))
    monkeypatch.undo()
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(sc.InvalidWeights, match=r"empty\.pt is empty"):
        engine.load_model("torchvision:resnet18", weights=str(empty))
    numbers = _save(tmp_path, "numbers.pt", {"epoch": 3, "lr": 0.1})
    with pytest.raises(
        sc.InvalidWeights, match=r"numbers\.pt holds no tensors \(its top-level keys: epoch, lr\)"
    ):
        engine.load_model("torchvision:resnet18", weights=str(numbers))


class Payload:
    """Unpickling this would create a folder: the marker that code ran."""

    marker = ""

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's note on the refused file
@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_a_pickle_payload_is_refused_without_running(tmp_path, writer) -> None:
    payload = Payload()
    payload.marker = str(tmp_path / "code-ran")
    path = tmp_path / "evil.pth"
    if writer == "torch.save":
        torch.save({"fc.weight": payload}, path)
    else:
        with path.open("wb") as fh:
            pickle.dump({"fc.weight": payload}, fh)
    with pytest.raises(sc.InvalidWeights) as err:
        sc.Engine(device="cpu").load_model("torchvision:resnet18", weights=str(path))
    message = str(err.value)
    assert "refused for safety" in message and "weights_only=False" not in message
    assert not Path(payload.marker).exists()
    if writer == "torch.save":
        assert "posix.mkdir" in message or "nt.mkdir" in message  # names what it refused


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit's deprecation notice
def test_a_program_given_as_weights_is_refused(tmp_path) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    with pytest.raises(sc.InvalidWeights, match=r"TorchScript program, not a weights file.*allow_programs"):
        sc.Engine(device="cpu").load_model("torchvision:resnet18", weights=str(path))


def test_curated_ids_point_to_the_source_id_for_other_heads(tmp_path, tuned) -> None:
    path = _save(tmp_path, "ckpt.pth", tuned.state_dict())
    with pytest.raises(sc.InvalidWeights, match=r"fc\.weight \(file \(7, 512\).*'torchvision:resnet18'"):
        sc.Engine(device="cpu").load_model("resnet18", weights=str(path))
