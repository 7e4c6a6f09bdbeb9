"""Programs (TorchScript, torch.export) are code: refused unless the operator allows them in the config
file or the environment; once allowed, "program:<path>" loads a classifier whose layers are its modules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import saliency_core as sc
from saliency_core.models import program_source
from saliency_core.plugins import CONFIG_ENV

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit's deprecation notice


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2))
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))


@pytest.fixture
def tiny() -> nn.Module:
    torch.manual_seed(0)
    return Tiny().eval()


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(program_source.ALLOW_ENV, raising=False)
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "saliency.toml"))  # absent until a test writes it
    return tmp_path / "saliency.toml"


def _scripted(tmp_path: Path, module: nn.Module) -> Path:
    path = tmp_path / "tiny.pt"
    torch.jit.save(torch.jit.script(module), str(path))
    return path


def test_programs_are_refused_by_default(tmp_path, tiny, no_config) -> None:
    path = _scripted(tmp_path, tiny)
    assert not sc.programs_allowed()
    with pytest.raises(sc.UnknownModel) as err:
        sc.Engine(device="cpu").load_model(f"program:{path}")
    message = str(err.value)
    assert "Programs are code" in message and "off by default" in message
    assert "allow_programs = true" in message and "SALIENCY_ALLOW_PROGRAMS=1" in message


def test_the_config_file_allows_programs(no_config) -> None:
    no_config.write_text("allow_programs = true\n", encoding="utf-8")
    assert sc.programs_allowed()
    no_config.write_text('allow_programs = "yes"\n', encoding="utf-8")  # only a real true counts
    assert not sc.programs_allowed()


def test_an_allowed_torchscript_program_loads(tmp_path, tiny, no_config, monkeypatch) -> None:
    monkeypatch.setenv(program_source.ALLOW_ENV, "1")
    path = _scripted(tmp_path, tiny)
    engine = sc.Engine(device="cpu")
    model = engine.load_model(f"program:{path}")
    assert model.task == "classification" and model.categories == [f"class {i}" for i in range(4)]
    # No layer hooks on TorchScript: no CAM layer to suggest; its modules are in the layer tree.
    assert model.layers() == [] and {"features", "features.0", "fc"} <= {n for n, _ in model.layer_tree()}
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.forward(x), tiny(x), atol=1e-6)
    assert engine.attribute(model, x, "gradient", 1).map.shape == (32, 32)
    with pytest.raises(sc.InvalidParameter, match="TorchScript programs do not allow layer hooks"):
        engine.attribute(model, x, "gradcam", 1, layer="features")
    assert dict(model.layer_tree())["fc"] is None  # listed, but a TorchScript module cannot be measured
    assert model.source_info()["source"] == "program"
    with pytest.raises(sc.InvalidParameter, match="carries its own weights"):
        engine.load_model(f"program:{path}", weights=None)


def test_an_allowed_exported_program_has_readable_layers(tmp_path, tiny, no_config, monkeypatch) -> None:
    monkeypatch.setenv(program_source.ALLOW_ENV, "1")
    path = tmp_path / "tiny.pt2"
    torch.export.save(torch.export.export(tiny, (torch.randn(1, 3, 32, 32),)), str(path))
    model = sc.Engine(device="cpu").load_model(f"program:{path}")
    x = torch.randn(1, 3, 32, 32)
    assert model.spec.preprocess.crop == 32  # the size the program was exported for
    assert model.layers()[0] == "features"
    a = sc.Engine(device="cpu").attribute(model, x, "gradcam", 2)
    assert a.raw.shape == (15, 15) and float(a.raw.abs().sum()) > 0
    assert dict(model.layer_tree(x))["features"] == (1, 8, 15, 15)
