"""The device picker on Settings: the devices the machine has, a move of the shared engine, clear errors."""

from __future__ import annotations

from app_helpers import texts
from streamlit.testing.v1 import AppTest

import saliency_core as sc
from ui import state

SETTINGS = "pages/5_Settings.py"


def _errors(at: AppTest) -> list[str]:
    return [str(e.value).replace("\\", "") for e in at.error]


def test_a_cpu_only_machine_shows_cpu_and_nothing_else_to_pick(app) -> None:
    at = app(page=SETTINGS)
    picker = at.selectbox(key=state.DEVICE)
    assert picker.options == ["cpu"] and picker.value == "cpu" and picker.disabled
    assert "the only device here" in texts(at)


def test_every_device_is_offered_and_an_unavailable_one_says_why(app, monkeypatch) -> None:
    monkeypatch.setattr(sc, "available_devices", lambda: ["cpu", "cuda:0", "cuda:1", "mps"])
    at = app(page=SETTINGS)
    picker = at.selectbox(key=state.DEVICE)
    assert picker.options == ["cpu", "cuda:0", "cuda:1", "mps"] and not picker.disabled
    picker.set_value("cuda:1").run()
    assert not at.exception, [e.value for e in at.exception]
    errors = _errors(at)
    assert any("cuda:1 is not available here; this machine has cpu" in e for e in errors), errors
    assert sc.current_device() == "cpu" and at.selectbox(key=state.DEVICE).value == "cpu"
    at.run()
    assert not at.error  # said once


def test_choosing_the_device_moves_the_engine_and_the_maps_still_come(app, monkeypatch) -> None:
    moved = []
    real = sc.set_device
    monkeypatch.setattr(sc, "available_devices", lambda: ["cpu", "mps"])
    monkeypatch.setattr(sc, "set_device", lambda name: (moved.append(name), real("cpu"))[1])
    at = app(page=SETTINGS)
    at.selectbox(key=state.DEVICE).set_value("mps").run()
    assert not at.exception and moved == ["mps"] and not at.error
    at.switch_page("app.py").run()
    assert not at.exception and len(at.main.image) >= 1  # Explore still draws its map
