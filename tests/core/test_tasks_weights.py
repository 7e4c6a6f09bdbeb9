"""Detector weights through torchvision's cache in a temporary TORCH_HOME (frozen batch norm, our input size)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from torchvision.ops.misc import FrozenBatchNorm2d

import saliency_core as sc
from saliency_core.models.detection import DETECTION_SIDE

MODEL = "fasterrcnn_mobilenet_v3_large_fpn"
FILE = "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth"


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("SALIENCY_OFFLINE", "1")
    return tmp_path


def _coco_like_state() -> dict[str, torch.Tensor]:
    """A state dict with the published file's keys: the random-init model's, with batch-norm statistics set."""
    torch.manual_seed(7)
    model = torchvision.models.get_model(MODEL, weights=None, weights_backbone=None)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("running_var"):
                buffer.uniform_(0.5, 2.0)
    return {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def test_detector_weights_from_the_cache_folder(torch_home: Path) -> None:
    with pytest.raises(sc.WeightsUnavailable, match=FILE):
        sc.Engine(device="cpu").load_model(MODEL)
    state = _coco_like_state()
    path = torch_home / "hub" / "checkpoints" / FILE
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    assert {m.id: m for m in sc.list_models()}[MODEL].weights_available
    model = sc.Engine(device="cpu").load_model(MODEL)
    module = model.module
    loaded = module.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    # Built as torchvision builds it for pretrained weights, at this project's input size.
    assert any(isinstance(m, FrozenBatchNorm2d) for m in module.modules())
    assert module.transform.min_size == (DETECTION_SIDE,) and module.transform.max_size == DETECTION_SIDE
    assert not module.training and len(model.categories) == 91 and model.categories[1] == "person"


def test_a_detector_file_that_does_not_fit_is_refused(torch_home: Path) -> None:
    state = _coco_like_state()
    state["roi_heads.box_predictor.cls_score.weight"] = torch.zeros(3, 1024)
    path = torch_home / "hub" / "checkpoints" / FILE
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    with pytest.raises(sc.InvalidWeights, match="does not fit"):
        sc.Engine(device="cpu").load_model(MODEL)
