"""Assertion helpers for AppTest trees."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

import saliency_core as sc
from ui import state


def demo_weights() -> str:
    """Trained demo weights when bundled, else random init (the UI path is the same)."""
    info = next(m for m in sc.list_models() if m.id == "shapes_demo")
    return "default" if info.weights_available else "random"


def texts(at: AppTest) -> str:
    """Everything the page says (markdown, captions, alerts, image captions), for plain-text assertions."""
    parts = []
    for kind in ("markdown", "caption", "info", "warning", "error", "success"):
        parts += [str(e.value) for e in getattr(at, kind)]
    for image in at.image:
        parts += list(image.captions)
    return "\n".join(parts)


def computed(at: AppTest) -> int:
    return int(at.session_state[state.COMPUTE_COUNT]) if state.COMPUTE_COUNT in at.session_state else 0
