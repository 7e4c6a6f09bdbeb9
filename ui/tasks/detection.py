"""Object detection: detections above a score threshold, drawn as boxes, the chosen one highlighted."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import streamlit as st

import saliency_core as sc
from ui import clamp, state

from .base import TaskUI, register

if TYPE_CHECKING:
    from ui.view import View

THRESHOLD_DEFAULT = 0.5
THRESHOLD = sc.Param("threshold", "float", THRESHOLD_DEFAULT, "", min=0.05, max=0.95)


@register
class DetectionUI(TaskUI):
    task = "detection"
    picker_title = "Detection"
    threshold_noun = "Detections"
    lost_noun = "detection"
    slow_what = "a detector (every pass runs the whole detector on the full image)"
    random_note = (
        "A random-init detector detects nothing useful: usually nothing at all above the score threshold, "
        "or boxes that mean nothing."
    )

    def top_k(self, info: sc.ModelInfo) -> int:
        return 30  # every detection above the threshold, up to 30

    def picker_help(self, n: int) -> str:
        return (
            f"What to explain: one of the {n} detections above the threshold, best first (its class score)."
        )

    def target_label(self, target: sc.Target, rank: int) -> str:
        x0, y0 = (round(float(v)) for v in target.box[:2])
        return f"{rank + 1}. {target.label} — {target.score:.2f} (at {x0}, {y0})"

    def picture_caption(self, n: int) -> str:
        return f"{n} detections; the chosen one highlighted"

    def nothing_predicted(self, threshold: float, weights: str) -> str:
        return (
            f"No detection scores {threshold:.2f} or more on this image{random_note(weights)}: there is "
            "nothing to explain. Lower the score threshold, or try another image."
        )

    def share_fields(self, view: View) -> dict[str, str]:
        if view.threshold is not None and view.threshold != THRESHOLD_DEFAULT:
            return {"threshold": str(view.threshold)}
        return {}

    def apply_share(self, link: dict[str, Any]) -> list[str]:
        if not link.get("threshold"):
            return []
        try:  # read like any number (no inf, NaN, 1e400), fitted to the slider's range and steps
            value, note = clamp.from_link(THRESHOLD, link["threshold"])
        except sc.InvalidParameter:
            return [f"threshold={link['threshold']}"]
        st.session_state[state.THRESHOLD] = round(round(value / 0.05) * 0.05, 2)
        return [note] if note else []


def random_note(weights: str) -> str:
    return " (random weights detect nothing useful)" if weights == "random" else ""
