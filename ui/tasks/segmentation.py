"""Semantic segmentation: the classes present, largest first, optionally restricted to a rectangle."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import streamlit as st

import saliency_core as sc
from saliency_core import viz
from ui import state
from ui.widgets import draw

from .base import TaskUI, register

if TYPE_CHECKING:
    from ui.view import View

REGION_HELP = (
    "Explain the class only inside a rectangle: the target becomes the class's logits summed over the "
    "pixels that are inside the rectangle and predicted as this class (rectangle ∧ predicted mask). "
    "A rectangle around one of two objects of a class thus explains that one. Pixels the model gives to "
    "another class do not count, so a rectangle holding none of this class has nothing to explain."
)


def mask_label(target: sc.Target, name: str) -> str:
    """'name — 12% (p 0.83)': the mask's share of the image and the mean probability there."""
    share = float(viz.as_map(target.mask).mean())
    score = f" (p {target.score:.2f})" if target.score is not None else ""
    return f"{name} — {share:.0%}{score}"


@register
class SegmentationUI(TaskUI):
    task = "segmentation"
    picker_title = "Class"
    per_base_keys = (state.REGION_ON, state.REGION_X, state.REGION_Y, state.REGION_LASSO)

    def top_k(self, info: sc.ModelInfo) -> int:
        return info.num_classes

    def picker_help(self, n: int) -> str:
        return (
            f"What to explain: one of the {n} classes present, largest first, summed over its predicted mask "
            "(its share of the image, and p: its mean probability there)."
        )

    def target_label(self, target: sc.Target, rank: int) -> str:
        if target.mask is None:
            return super().target_label(target, rank)
        return mask_label(target, f"{rank + 1}. {target.label}")

    def picture_caption(self, n: int) -> str:
        return "The chosen class's predicted mask"

    def refine(
        self, prediction: sc.Target, size: tuple[int, int]
    ) -> tuple[sc.Target | None, tuple[int, int, int, int] | None, str]:
        """(the class restricted to a rectangle, the rectangle, a problem) or (None, None, "") when off."""
        h, w = size
        on = st.toggle("Only inside a rectangle", key=state.REGION_ON, help=REGION_HELP)
        if not on:
            return None, None, ""
        predicted = (
            viz.as_map(prediction.mask) if prediction.mask is not None else np.ones((h, w), np.float32)
        )
        x0, y0, x1, y1 = _bounding_box(predicted)
        if not _valid_range(st.session_state.get(state.REGION_X), w):
            st.session_state[state.REGION_X] = (x0, x1)
        if not _valid_range(st.session_state.get(state.REGION_Y), h):
            st.session_state[state.REGION_Y] = (y0, y1)
        region_drawing(predicted, (h, w))
        xs = st.slider("Rectangle x (pixels)", 0, w, key=state.REGION_X, help="Left and right edges.")
        ys = st.slider("Rectangle y (pixels)", 0, h, key=state.REGION_Y, help="Top and bottom edges.")
        rect = (int(xs[0]), int(ys[0]), int(xs[1]), int(ys[1]))
        lasso = st.session_state.get(state.REGION_LASSO)
        if lasso is not None and lasso[0] == rect:  # the lasso's outline while the sliders hold its box
            inside = lasso[1].astype(np.float32)
        else:
            inside = np.zeros((h, w), np.float32)
            inside[rect[1] : rect[3], rect[0] : rect[2]] = 1.0
        region = (predicted > 0.5).astype(np.float32) * inside
        if not region.any():
            problem = str(
                sc.TargetNotFound(
                    f"Nothing to explain: no pixel inside the rectangle ({rect[0]}, {rect[1]}, {rect[2]}, "
                    f"{rect[3]}) is predicted as '{prediction.label}'. Move the rectangle over the class's "
                    "mask (outlined on the picture) or turn the rectangle off."
                )
            )
            return None, rect, problem
        share = float(region.mean())
        restricted = sc.ClassTarget(
            int(prediction.index),
            label=f"{prediction.label} inside ({rect[0]}, {rect[1]}, {rect[2]}, {rect[3]}), "
            f"{share:.0%} of the image",
            score=prediction.score,
            mask=region,
        )
        return restricted, rect, ""

    def share_fields(self, view: View) -> dict[str, str]:
        return {"region": ",".join(str(v) for v in view.region)} if view.region is not None else {}

    def apply_share(self, link: dict[str, Any]) -> list[str]:
        if not link.get("region"):
            return []
        try:
            x0, y0, x1, y1 = (int(v) for v in str(link["region"]).split(","))
            if not (0 <= x0 < x1 and 0 <= y0 < y1):
                raise ValueError
        except ValueError:
            return [f"region={link['region']}"]
        st.session_state[state.REGION_ON] = True
        st.session_state[state.REGION_X] = (x0, x1)
        st.session_state[state.REGION_Y] = (y0, y1)
        st.session_state[state.KEEP_TARGET] = True
        return []


def region_drawing(predicted: np.ndarray, size: tuple[int, int]) -> bool:
    """The picture (the predicted mask drawn on it) for drawing the region: a box or lasso drawn since the
    last run sets the sliders (a lasso's outline is kept as the region); the sliders stay the fallback.
    False when the session has no picture of this size to draw on."""
    picture = _picture(size)
    if picture is None:
        return False
    signature, found, problem = draw.new_drawing(
        st.session_state.get(state.REGION_DRAW), st.session_state.get(state.REGION_DRAWN), size
    )
    st.session_state[state.REGION_DRAWN] = signature
    if found is not None:
        kind, (x0, y0, x1, y1), mask = found
        st.session_state[state.REGION_X] = (x0, x1)
        st.session_state[state.REGION_Y] = (y0, y1)
        if kind == "lasso":
            st.session_state[state.REGION_LASSO] = ((x0, y0, x1, y1), mask)
        else:
            st.session_state.pop(state.REGION_LASSO, None)
    xs, ys = st.session_state[state.REGION_X], st.session_state[state.REGION_Y]
    shown = viz.draw_mask(picture, predicted > 0.5)
    draw.draw(shown, state.REGION_DRAW, (xs[0], ys[0], xs[1], ys[1]), height=260)
    st.caption("Drag a box on the picture (or use the lasso in its toolbar), or move the sliders.")
    if problem:
        st.warning(f"{problem} The rectangle is unchanged.", icon=":material/gesture:")
    return True


def _picture(size: tuple[int, int]) -> np.ndarray | None:
    """The picture the model sees, as this session prepared it for the view being built (ui/view.prepare)."""
    for _, picture in st.session_state.get(state.PREPARED, {}).values():
        if tuple(picture.shape[:2]) == tuple(size):
            return picture
    return None


def _bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask > 0.5)
    if not len(xs):
        return 0, 0, mask.shape[1], mask.shape[0]
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _valid_range(value: object, hi: int) -> bool:
    return (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, int) for v in value)
        and 0 <= value[0] < value[1] <= hi
    )
