"""Checkpoints and class-name files: fine-tuned files load through source ids with their head size and
names (wrappers and prefixes undone), the cache follows the file's content, and every file that cannot
be used is refused with one clear message before anything unsafe is read."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import time
import zipfile
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file

import saliency_core as sc
from saliency_core.models import checkpoints

NAMES = ["ant", "bee", "cat", "dog", "eel", "fox", "gnu"]


@pytest.fixture
def limits_restored():
    previous = sc.limits()
    yield previous
    sc.set_limits(previous)


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


def test_oversized_empty_and_tensorless_files(tmp_path, tuned, limits_restored) -> None:
    engine = sc.Engine(device="cpu")
    path = _save(tmp_path, "ckpt.pth", tuned.state_dict())
    sc.set_limits(max_weights_bytes=1024)
    with pytest.raises(
        sc.ResourceLimit, match=r"ckpt\.pth is 42\.\d MiB, over this server's limit of 1\.0 KiB"
    ):
        engine.load_model("torchvision:resnet18", weights=str(path))
    sc.set_limits(limits_restored)
    huge = tmp_path / "huge.pth"
    with huge.open("wb") as fh:
        fh.truncate(2 * 1024**3 + 1)  # sparse: 2 GiB on paper, nothing on disk
    started = time.perf_counter()
    with pytest.raises(sc.ResourceLimit, match=r"huge\.pth is 2\.0 GiB, over .* \(max_weights_bytes\)"):
        engine.load_model("torchvision:resnet18", weights=str(huge))
    assert time.perf_counter() - started < 1.0  # refused from its size, not read
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
    assert "contains Python objects other than tensors" in message and "can run code" in message
    assert "torch.save(model.state_dict(), path)" in message and "weights_only=False" not in message
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


class Tiny(torch.nn.Module):
    """A conv and a batch norm: float parameters and an integer buffer (num_batches_tracked)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3)
        self.bn = torch.nn.BatchNorm2d(2)


def _odd_tensors() -> dict[str, torch.Tensor]:
    return {
        "sparse": torch.eye(3).to_sparse(),
        "meta": torch.empty(3, 3, device="meta"),
        "quantized": torch.quantize_per_tensor(torch.ones(3), 0.1, 0, torch.qint8),
        "nested": torch.nested.nested_tensor([torch.ones(2), torch.ones(3)]),
    }


@pytest.mark.filterwarnings("ignore")  # torch's notes on saving quantized and nested tensors
@pytest.mark.parametrize(
    "kind,shown",
    [("sparse", "sparse coo"), ("meta", "meta device"), ("quantized", "quantized"), ("nested", "nested")],
)
def test_tensors_that_are_not_dense_weights_are_refused_by_name(tmp_path, kind, shown) -> None:
    path = _save(tmp_path, "odd.pth", {"fine": torch.ones(2), f"{kind}.weight": _odd_tensors()[kind]})
    with pytest.raises(
        sc.InvalidWeights,
        match=rf"odd\.pth holds tensors that are not plain dense CPU tensors: "
        rf"{kind}\.weight \([^)]*{shown}",
    ):
        checkpoints.read_checkpoint(path)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_nan_and_infinite_values_are_refused_by_name(tmp_path, suffix) -> None:
    state = {k: v.clone() for k, v in Tiny().state_dict().items()}
    state["conv.weight"][0, 0, 1, 1] = float("nan")
    state["bn.bias"][1] = float("-inf")
    path = tmp_path / f"broken{suffix}"
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    with pytest.raises(
        sc.InvalidWeights,
        match=r"NaN or infinite values in (conv\.weight, bn\.bias|bn\.bias, conv\.weight): ",
    ):
        checkpoints.read_checkpoint(path)


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.complex64])
def test_parameters_of_another_kind_of_dtype_are_refused(tmp_path, dtype) -> None:
    state = Tiny().state_dict()
    state["conv.weight"] = state["conv.weight"].to(dtype)
    read = checkpoints.read_checkpoint(_save(tmp_path, "typed.pth", state))
    shown = str(dtype).removeprefix("torch.")
    with pytest.raises(
        sc.InvalidWeights,
        match=rf"1 with the wrong kind of dtype: conv\.weight \(file {shown}, model floating point\)",
    ):
        checkpoints.load_checked(Tiny(), read, "The weights file typed.pth")


def test_integer_buffers_and_legacy_files_load_exactly(tmp_path) -> None:
    torch.manual_seed(5)
    saved = Tiny()
    saved.bn.num_batches_tracked.fill_(7)
    path = tmp_path / "old.pth"
    torch.save(saved.state_dict(), path, _use_new_zipfile_serialization=False)  # the pre-1.6 format
    loaded = checkpoints.load_checked(Tiny(), checkpoints.read_checkpoint(path), "old.pth")
    for key, value in saved.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value) and loaded.state_dict()[key].dtype == value.dtype
    assert int(loaded.bn.num_batches_tracked) == 7


def test_tensors_do_not_depend_on_the_file_once_read(tmp_path) -> None:
    state = Tiny().state_dict()
    path = _save(tmp_path, "read.pth", state)
    read = checkpoints.read_checkpoint(path)
    path.write_bytes(b"")  # a memory-mapped tensor would now read zeros or fault
    assert all(torch.equal(read[k], v) for k, v in state.items())


def test_a_view_far_larger_than_its_storage_is_refused_before_copying(tmp_path) -> None:
    view = torch.zeros(1).as_strided((1 << 20, 1 << 20), (0, 0))  # 4 TiB of floats over 4 bytes
    for legacy in (False, True):
        path = tmp_path / f"view-{legacy}.pth"
        torch.save({"w": view}, path, _use_new_zipfile_serialization=not legacy)
        with pytest.raises(sc.ResourceLimit, match=r"tensors in view-\w+\.pth is 4096\.0 GiB, over"):
            checkpoints.read_checkpoint(path)


def _safetensors(tmp_path: Path, header: dict, data: bytes = b"\0" * 16, length: int | None = None) -> Path:
    raw = json.dumps(header).encode()
    path = tmp_path / "edited.safetensors"
    path.write_bytes(int(len(raw) if length is None else length).to_bytes(8, "little") + raw + data)
    return path


def test_safetensors_headers_are_checked_before_loading(tmp_path) -> None:
    good = {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}
    assert checkpoints.read_checkpoint(_safetensors(tmp_path, good))["w"].shape == (2, 2)
    cases = [
        (good, 1 << 40, r"header claims 1099511627776 bytes"),
        ({"w": {**good["w"], "data_offsets": [0, 1 << 33]}}, None, r"data of 'w' lies outside the file"),
        ({"w": {**good["w"], "shape": [4, 4]}}, None, r"does not match its shape \[4, 4\] and dtype F32"),
        ({"w": {**good["w"], "dtype": "Q4"}}, None, r"stores 'w' as 'Q4', a dtype this reader does not know"),
        ({"w": {**good["w"], "shape": [2, -2]}}, None, r"shape of 'w' is not a list of sizes"),
        ({"__metadata__": {"n": 1}, **good}, None, r"__metadata__ is not a mapping of strings"),
    ]
    for header, length, message in cases:
        with pytest.raises(sc.InvalidWeights, match=message):
            checkpoints.read_checkpoint(_safetensors(tmp_path, header, length=length))


def test_a_recompressed_archive_is_refused_not_misread(tmp_path) -> None:
    path = _save(tmp_path, "plain.pth", Tiny().state_dict())
    packed = tmp_path / "packed.pth"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            out.writestr(info.filename, src.read(info))
    with pytest.raises(
        sc.InvalidWeights, match=r"compressed record, plain/data/0, .*torch\.save stores tensor data"
    ):
        checkpoints.read_checkpoint(packed)


def test_records_that_unpack_over_the_limit_are_refused(tmp_path, limits_restored) -> None:
    # Hex text compresses about 2×: within the ratio bound, but twice the file's size once unpacked.
    path = _save(tmp_path, "notes.pth", {"w": torch.ones(2), "notes": os.urandom(60_000).hex()})
    packed = tmp_path / "notes-packed.pth"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(packed, "w") as out:
        for info in src.infolist():
            kind = zipfile.ZIP_DEFLATED if info.filename.endswith("data.pkl") else zipfile.ZIP_STORED
            out.writestr(info.filename, src.read(info), compress_type=kind)
    sc.set_limits(max_weights_bytes=packed.stat().st_size + 1024)
    with pytest.raises(sc.ResourceLimit, match=r"notes-packed\.pth once unpacked is 1\d\d\.\d KiB, over"):
        checkpoints.read_checkpoint(packed)
    sc.set_limits(limits_restored)
    assert torch.equal(checkpoints.read_checkpoint(packed)["w"], torch.ones(2))


def test_a_training_checkpoint_with_objects_names_them(tmp_path) -> None:
    import argparse

    path = _save(
        tmp_path, "lightning.ckpt", {"state_dict": Tiny().state_dict(), "hparams": argparse.Namespace(lr=1)}
    )
    with pytest.raises(
        sc.InvalidWeights, match=r"other than tensors \(argparse\.Namespace\)\. .*state_dict\(\)"
    ):
        checkpoints.read_checkpoint(path)
