"""Occlusion's modes in the pages: the mode that made a map is said beside it, and the card records it."""

from __future__ import annotations

import numpy as np
import pytest
from app_helpers import texts

import saliency_core as sc
from ui import state
from ui.display import DEFAULTS
from ui.export import map_entry
from ui.results import Result


@pytest.fixture
def forget_maps():
    """The maps computed here must not be found in the cache by later tests (Learn's example waits for Run
    only when its map is not cached)."""
    yield
    sc.get_engine().cache.clear()


def test_explore_says_an_adaptive_occlusion_map_is_approximate(app, forget_maps) -> None:
    at = app()
    at.button_group(key=state.FAMILY).set_value("perturbation").run()
    at.selectbox(key=state.METHOD).set_value("occlusion").run()
    at.button_group(key="param.occlusion.mode").set_value("adaptive").run()
    if "Press **Run**" in texts(at):
        at.button(key="act.run").click().run()
    assert not at.exception
    shown = texts(at)
    assert "Occlusion overlay" in shown
    assert "mode: adaptive (approximate)" in shown and "Adaptive occlusion (approximate)" in shown
    at.button_group(key="param.occlusion.mode").set_value("exact").run()
    if "Press **Run**" in texts(at):
        at.button(key="act.run").click().run()
    assert not at.exception
    assert "mode: exact" in texts(at) and "mode: adaptive" not in texts(at)


def _result(extras: dict) -> Result:
    return Result("occlusion", "Occlusion", "perturbation", {"mode": "adaptive"}, np.zeros((4, 4), np.float32),
                  (4, 4), "circle", 0, 1.0, 1.0, False, 10, 0, "cpu", extras=extras)  # fmt: skip


def test_the_card_records_the_mode() -> None:
    entry = map_entry(_result({"mode": "adaptive", "windows": 60, "windows_total": 625}), DEFAULTS)
    assert entry["mode"] == "adaptive (approximate): 60 of 625 windows"
    exact = map_entry(_result({"mode": "exact", "incremental": True}), DEFAULTS)
    assert exact["mode"] == "exact, incremental"
    assert map_entry(_result({}), DEFAULTS)["mode"] is None
