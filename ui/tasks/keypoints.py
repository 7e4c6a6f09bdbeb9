"""Human pose: persons above a score threshold, and one of their 17 COCO keypoints by name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import streamlit as st

import saliency_core as sc
from saliency_core import viz
from ui import state

from .base import register
from .detection import DetectionUI, random_note

if TYPE_CHECKING:
    from ui.view import View


@register
class KeypointsUI(DetectionUI):
    task = "keypoints"
    picker_title = "Person"
    threshold_noun = "Persons"
    lost_noun = "person"
    per_base_keys = (state.KEYPOINT,)

    def picker_help(self, n: int) -> str:
        return f"Whose keypoint to explain: one of the {n} persons above the threshold, best first."

    def target_label(self, target: sc.Target, rank: int) -> str:
        score = getattr(target, "person_score", None)
        return f"{target.person} — {score:.2f}" if score is not None else target.person

    def picture_caption(self, n: int) -> str:
        return f"{n} persons; the chosen one's skeleton and keypoint"

    def nothing_predicted(self, threshold: float, weights: str) -> str:
        return (
            f"No person scores {threshold:.2f} or more on this image{random_note(weights)}: there is nothing "
            "to explain. Lower the score threshold, or try an image with people."
        )

    def refine(
        self, prediction: sc.Target, size: tuple[int, int]
    ) -> tuple[sc.Target | None, tuple[int, int, int, int] | None, str]:
        """The keypoint picker: the person's most confident keypoint first."""
        names = list(prediction.keypoint_names)
        state.default(state.KEYPOINT, prediction.keypoint_name, allowed=names)
        logits = viz.to_numpy(prediction.keypoints)[:, 2] if prediction.keypoints is not None else None
        name = st.selectbox(
            "Keypoint",
            names,
            key=state.KEYPOINT,
            format_func=lambda n: (
                n.replace("_", " ") + (f" (logit {logits[names.index(n)]:.1f})" if logits is not None else "")
            ),
            help="Which of the person's 17 COCO keypoints to explain: its heatmap logit at the predicted "
            "location. The most confident keypoint is chosen first.",
        )
        return prediction.with_keypoint(name), None, ""

    def share_fields(self, view: View) -> dict[str, str]:
        out = super().share_fields(view)
        keypoint = getattr(view.target, "keypoint_name", None)
        if keypoint:
            out["keypoint"] = keypoint
        return out

    def apply_share(self, link: dict[str, Any]) -> list[str]:
        problems = super().apply_share(link)
        if link.get("keypoint"):
            st.session_state[state.KEYPOINT] = str(link["keypoint"])  # checked against the names when drawn
            st.session_state[state.KEEP_TARGET] = True
        return problems
