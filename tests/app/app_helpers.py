"""Assertion helpers for AppTest trees."""

from __future__ import annotations

import re
import time

import pytest
from streamlit.testing.v1 import AppTest

import saliency_core as sc
from ui import state


def demo_weights() -> str:
    """Trained demo weights when bundled, else random init (the UI path is the same)."""
    info = next(m for m in sc.list_models() if m.id == "shapes_demo")
    return "default" if info.weights_available else "random"


def texts(at: AppTest) -> str:
    """Everything the page says (markdown, captions, alerts, image captions) as the reader sees it (the
    backslash escapes of ui/text.py undone), for plain-text assertions."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", "\n".join(markdown_sources(at)))


def markdown_sources(at: AppTest) -> list[str]:
    """The markdown source of every element that renders markdown, as the browser receives it."""
    parts = []
    for kind in ("markdown", "caption", "info", "warning", "error", "success", "toast"):
        parts += [str(e.value) for e in getattr(at, kind)]
    for image in at.image:
        parts += [c for c in image.captions if c]
    return parts


def computed(at: AppTest) -> int:
    return int(at.session_state[state.COMPUTE_COUNT]) if state.COMPUTE_COUNT in at.session_state else 0


def slow_batches(monkeypatch: pytest.MonkeyPatch, seconds_per_image: float) -> None:
    """Batched passes take at least `seconds_per_image` an image, so a long run outlasts a page visit on a
    fast machine too."""
    forward = sc.LoadedModel.forward

    def slow(self: sc.LoadedModel, x: object) -> object:
        if len(x) > 1:
            time.sleep(seconds_per_image * len(x))
        return forward(self, x)

    monkeypatch.setattr(sc.LoadedModel, "forward", slow)
