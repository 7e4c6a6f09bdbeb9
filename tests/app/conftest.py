"""AppTest fixtures: the real app script, driven headlessly, on the bundled samples and demo model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import streamlit as st
from app_helpers import demo_weights
from streamlit.testing.v1 import AppTest

import saliency_core as sc
from ui import state

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 120  # seconds per script run: generous for two shared CPU cores


# Measured speeds decide which methods run by themselves; pin them so tests behave the same on a quiet
# fast machine and a loaded slow one (seconds per image: a forward, a forward plus backward).
PINNED_SPEED = {"forward": 0.1, "backward": 0.3}


@pytest.fixture(autouse=True)
def _pinned_speed(monkeypatch: pytest.MonkeyPatch) -> None:
    def pass_seconds(self: sc.Engine, model: object, x: object, kind: str, images: int) -> tuple[float, bool]:
        return PINNED_SPEED["forward" if kind == "forward" else "backward"] * images, False

    monkeypatch.setattr(sc.Engine, "pass_seconds", pass_seconds)
    monkeypatch.setattr(sc.Engine, "probe", lambda self, model, x: None)
    # Pinned speeds are the whole estimate: no learned per-method factor from earlier runs rescales them.
    monkeypatch.setattr(sc.Engine, "calibrate", lambda self, *args: None)


@pytest.fixture(autouse=True)
def _fresh_streamlit_caches() -> None:
    # Cached model lists would carry one test's weights status into the next.
    st.cache_data.clear()


@pytest.fixture
def app() -> Callable[..., AppTest]:
    """`app(page=None, query=None)`: the app after its first run (optionally on a page or from a link)."""

    def make(page: str | None = None, query: dict[str, str] | None = None) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
        at.session_state[state.WEIGHTS] = {"shapes_demo": demo_weights()}
        if query:
            at.query_params.update(query)
        at.run()
        if page is not None:
            at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return make
