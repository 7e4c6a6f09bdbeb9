"""U²-Net and U²-Net-small: shapes, published parameter counts, weights files, salient-region targets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import saliency_core as sc
from saliency_core.hooks import hook_count
from saliency_core.models.u2net import u2net, u2netp


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("SALIENCY_OFFLINE", "1")
    return tmp_path


def _state(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = u2netp()
    with torch.no_grad():  # non-trivial batch-norm statistics, so that a wrong load shows
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.normal_()
    return model.state_dict()


@pytest.mark.parametrize(("factory", "params"), [(u2netp, 1_131_181), (u2net, 44_009_869)])
def test_architectures_have_the_published_sizes_and_side_outputs(factory, params) -> None:
    model = factory().eval()
    assert sum(p.numel() for p in model.parameters()) == params  # 4.7 MB and 176 MB float32 files
    names = set(model.state_dict())
    assert {
        "stage1.rebnconvin.conv_s1.weight",
        "stage5d.rebnconv4.bn_s1.running_var",
        "outconv.weight",
    } <= names
    with torch.no_grad():
        outputs = model(torch.rand(1, 3, 64, 96))  # any size: upsampling goes to the skip's exact size
    assert len(outputs) == 7 and all(o.shape == (1, 1, 64, 96) for o in outputs)


def test_default_weights_explain_where_to_get_the_file(torch_home: Path) -> None:
    info = {m.id: m for m in sc.list_models()}["u2netp"]
    assert info.task == "salient_object" and not info.weights_available
    assert info.weights_path == str(torch_home / "hub" / "checkpoints" / "u2netp.pth")
    with pytest.raises(sc.WeightsUnavailable) as err:
        sc.Engine(device="cpu").load_model("u2netp")
    message = str(err.value)
    assert "u2netp.pth" in message and "xuebinqin/U-2-Net" in message and "weights=<path" in message
    assert err.value.folder == str(torch_home / "hub" / "checkpoints")


def test_published_format_file_in_the_cache_folder_loads_strictly(torch_home: Path) -> None:
    state = _state(3)
    path = torch_home / "hub" / "checkpoints" / "u2netp.pth"
    path.parent.mkdir(parents=True)
    torch.save(state, path)  # the release's format: a plain state dict saved with torch.save
    assert {m.id: m for m in sc.list_models()}["u2netp"].weights_available
    module = sc.Engine(device="cpu").load_model("u2netp").module
    assert all(torch.equal(module.state_dict()[k], v) for k, v in state.items())


def test_safetensors_round_trip_and_mismatched_files(tmp_path: Path) -> None:
    state = _state(4)
    path = tmp_path / "mine.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    engine = sc.Engine(device="cpu")
    model = engine.load_model("u2netp", weights=str(path))
    assert all(torch.equal(model.module.state_dict()[k], v) for k, v in state.items())
    big = tmp_path / "u2net_full.safetensors"
    save_file({k: v.contiguous() for k, v in u2net().state_dict().items()}, str(big))
    with pytest.raises(sc.InvalidWeights, match="shape mismatch"):
        engine.load_model("u2netp", weights=str(big))
    with pytest.raises(sc.InvalidWeights, match="No weights file"):
        engine.load_model("u2net", weights=str(tmp_path / "missing.pth"))


def test_salient_region_target_gradient_and_cam() -> None:
    engine = sc.Engine(device="cpu")
    model = engine.load_model("u2netp", weights=None)
    x = model.preprocess(torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    region = torch.zeros(64, 64)
    region[16:40, 20:48] = 1
    target = sc.MaskTarget(mask=region)
    gradient = engine.attribute(model, x, "gradient", target)
    assert gradient.raw.abs().sum() > 0 and torch.isfinite(gradient.map).all()
    cam = engine.attribute(model, x, "gradcam", target)  # default layer: stage2d, at half resolution
    assert cam.raw.shape == (32, 32) and cam.raw.abs().sum() > 0
    assert hook_count(model.module) == 0
