"""Choosing the device: the devices listed, a move of the shared engine (models under their locks,
device-bound needs dropped, finished maps kept, measurements reset) and clear errors."""

from __future__ import annotations

import threading
import time

import pytest
import torch

import saliency_core as sc
from saliency_core import device as device_module


@pytest.fixture
def engine() -> sc.Engine:
    return sc.Engine(device="cpu", cache_bytes=64 << 20)


@pytest.fixture
def loaded(engine: sc.Engine) -> sc.LoadedModel:
    return engine.load_model("shapes_demo", None)


def _input(model: sc.LoadedModel) -> torch.Tensor:
    picture = (torch.rand(64, 64, 3, generator=torch.Generator().manual_seed(2)) * 255).byte().numpy()
    return model.preprocess(picture)


def test_cpu_is_always_listed_and_cuda_devices_by_index(monkeypatch) -> None:
    assert device_module.available_devices()[0] == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(device_module, "_mps_available", lambda: True)
    assert device_module.available_devices() == ["cpu", "cuda:0", "cuda:1", "mps"]


def test_moving_cpu_to_cpu_keeps_maps_drops_needs_and_resets_speeds(engine, loaded) -> None:
    x = _input(loaded)
    before = engine.attribute(loaded, x, "gradcam", 0)
    keys = list(engine.cache._data)
    assert any(k[0] == "result" for k in keys) and any(k[0] != "result" for k in keys)
    assert engine.stats()["speed"]  # the passes were timed
    moved = engine.move_to("cpu")
    assert moved == torch.device("cpu") and engine.device == moved and loaded.device == moved
    assert all(k[0] == "result" for k in engine.cache._data)  # needs dropped, finished maps kept
    assert not engine.stats()["speed"]  # measured on the old device: forgotten
    passes = engine.forward_count
    again = engine.attribute(loaded, x, "gradcam", 0)
    assert engine.forward_count == passes  # the finished map came from the cache
    assert torch.equal(again.map, before.map)
    fresh = engine.attribute(loaded, x, "gradient", 0)  # needs are recomputed on the new device
    assert fresh.map.shape == before.map.shape and engine.forward_count > passes


def test_an_unavailable_device_is_refused_and_nothing_moves(engine, loaded) -> None:
    with pytest.raises(sc.InvalidParameter, match=r"cuda:0 is not available here; this machine has cpu"):
        engine.move_to("cuda:0")
    with pytest.raises(sc.InvalidParameter, match="not a device name"):
        engine.move_to("banana")
    assert engine.device == torch.device("cpu") and loaded.device == torch.device("cpu")


def test_set_device_moves_the_shared_engine(monkeypatch, engine) -> None:
    monkeypatch.setattr(sc.engine, "_ENGINE", engine)
    assert sc.set_device("cpu").startswith("cpu")
    with pytest.raises(sc.InvalidParameter, match="not available"):
        sc.set_device("cuda:1")


def test_a_move_waits_for_the_work_running_on_a_model(engine, loaded) -> None:
    finished = threading.Event()
    with loaded.lock:  # work is running on the model
        mover = threading.Thread(target=lambda: (engine.move_to("cpu"), finished.set()))
        mover.start()
        time.sleep(0.3)
        assert not finished.is_set()
    mover.join(10)
    assert finished.is_set()


def test_a_model_that_does_not_fit_leaves_every_model_where_it_was(engine, loaded, monkeypatch) -> None:
    second = engine.wrap(torch.nn.Linear(2, 2))  # wrapped modules are the caller's: never moved
    monkeypatch.setattr(device_module, "available_devices", lambda: ["cpu", "meta"])
    calls = []
    original = type(loaded.module).to

    def failing_to(self, *args, **kwargs):
        calls.append(args)
        if args and str(args[0]) == "meta":
            raise RuntimeError("CUDA out of memory (simulated)")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(loaded.module), "to", failing_to)
    with pytest.raises(sc.InvalidParameter, match="do not fit on meta"):
        engine.move_to("meta")
    assert engine.device == torch.device("cpu") and loaded.device == torch.device("cpu")
    assert second.device == torch.device("cpu")
    assert next(loaded.module.parameters()).device == torch.device("cpu")
