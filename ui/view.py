"""The current view every page works on: image, model, its input tensor, predictions and the chosen target."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import streamlit as st

import saliency_core as sc
from saliency_core import viz
from ui import images, state
from ui.images import ImageChoice


@dataclass(frozen=True, eq=False)
class View:
    """What the sidebar selected; `x` is the model input (opaque here: only saliency_core touches it).

    `target` is the prediction picked in the sidebar, refined where the task allows (`chosen`: one keypoint
    of a person, a class restricted to a rectangle), or None with `problem` saying why (nothing detected,
    an empty region): pages then explain nothing rather than a default target.
    """

    image: ImageChoice
    info: sc.ModelInfo
    weights: str  # "default" | "random" | "file:<digest prefix>" (uploaded weights)
    model: sc.LoadedModel
    x: Any = field(repr=False)
    picture: np.ndarray = field(repr=False)  # the uint8 picture the model sees (maps are drawn over this)
    predictions: list[sc.Target] = field(repr=False)
    target_index: int = 0
    chosen: sc.Target | None = field(default=None, repr=False)
    problem: str = ""
    region: tuple[int, int, int, int] | None = None  # a rectangle restricting a segmentation class
    threshold: float | None = None  # detection / pose: the lowest score listed

    @property
    def task(self) -> str:
        return self.model.task

    @property
    def target(self) -> sc.Target | None:
        if self.problem or not self.predictions:
            return None
        if self.chosen is not None:
            return self.chosen
        return self.predictions[min(self.target_index, len(self.predictions) - 1)]

    @property
    def target_label(self) -> str:
        target = self.target
        return target.describe() if target is not None else "(no target)"

    def target_key(self) -> tuple:
        target = self.target
        return target.key() if target is not None else ()

    def missing_target(self) -> str:
        """Why there is nothing to explain ("" when there is a target)."""
        if self.target is not None:
            return ""
        return self.problem or "The model predicts nothing on this image, so there is nothing to explain."

    def base_key(self) -> tuple:
        """Identity of (image, model, weights): what predictions depend on."""
        return (self.image.digest, self.info.id, self.weights)


def prepare(choice: ImageChoice, model: sc.LoadedModel) -> tuple[Any, np.ndarray]:
    """(model input, the picture it shows), prepared once per session, image and model."""
    cache = st.session_state.setdefault(state.PREPARED, {})
    key = (choice.digest, model.id, model.weights)
    if key not in cache:
        cache.clear()
        x = model.preprocess(images.pil(choice))
        cache[key] = (x, viz.to_rgb_uint8(model.to_image(x)))
    return cache[key]


def current() -> View | None:
    """The view built by the sidebar in this run (None when no image or model is usable)."""
    return st.session_state.get(state.VIEW)


def require() -> View:
    """The current view, or a short explanation and a stop of the page when there is none."""
    found = current()
    if found is None:
        # Missing weights: the reason and its actions here, in sight (not below the sidebar's fold).
        from ui.sidebar import model  # imported here: the sidebar imports this module

        if not model.missing_panel():
            st.info("Choose an image and a model in the sidebar to begin.")
        st.stop()
    return found


def model_saliency(view: View) -> np.ndarray:
    """A salient-object model's own output as a probability map [H, W] in [0, 1] (the engine's cached pass)."""
    logits = viz.as_map(view.model.engine.forward(view.model, view.x))
    return (1.0 / (1.0 + np.exp(-np.clip(logits, -60.0, 60.0)))).astype(np.float32)


def short_label(target: sc.Target) -> str:
    """What a box on the picture says: 'person 0.82' (detection), 'person 1' (pose)."""
    if isinstance(target, sc.KeypointTarget):
        return target.person
    score = f" {target.score:.2f}" if target.score is not None else ""
    return f"{target.label}{score}"


def _highlighted_point(target: sc.Target) -> int | None:
    names = list(getattr(target, "keypoint_names", ()) or ())
    chosen = getattr(target, "keypoint", None)  # an index or a name
    if isinstance(chosen, int):
        return chosen
    return names.index(chosen) if chosen in names else None


def prediction_picture(view: View, highlight: int | None = None) -> np.ndarray:
    """The picture with whatever the predictions carry (boxes, keypoints, masks) drawn on it.

    Every detection's box, the chosen one highlighted; the chosen person's skeleton with its chosen keypoint
    marked; the chosen class's or salient region's mask, and a user's rectangle. Classification targets
    carry none of these, so for them this is the plain picture.
    """
    picture = view.picture
    index = view.target_index if highlight is None else highlight
    target = view.predictions[index] if 0 <= index < len(view.predictions) else None
    if highlight is None and view.target is not None:
        target = view.target
    if target is None:
        return picture
    side = max(picture.shape[:2])
    font, thickness = max(13, round(side / 30)), max(2, round(side / 220))  # legible when shown small
    boxes = [getattr(t, "box", None) for t in view.predictions]
    if any(b is not None for b in boxes):
        shown = [i for i, b in enumerate(boxes) if b is not None]
        picture = viz.draw_boxes(
            picture,
            [boxes[i] for i in shown],
            labels=[short_label(view.predictions[i]) for i in shown],
            highlight=shown.index(index) if index in shown else None,
            thickness=thickness,
            font_size=font,
        )
    keypoints = getattr(target, "keypoints", None)
    if keypoints is not None:
        names = list(getattr(target, "keypoint_names", ()) or ())
        points = np.array(viz.to_numpy(keypoints)).reshape(-1, 3)
        chosen = _highlighted_point(target)
        if chosen is not None and 0 <= chosen < len(points):
            points[chosen, 2] = max(points[chosen, 2], 1.0)  # the chosen point is drawn even if unsure
        picture = viz.draw_keypoints(
            picture,
            points,
            skeleton=getattr(target, "skeleton", ()) or (),
            highlight=chosen,
            names=names or None,
            radius=max(3, round(side / 160)),
            font_size=font,
        )
    mask = getattr(target, "mask", None)
    if mask is not None:
        picture = viz.draw_mask(picture, mask)
    if view.region is not None and highlight is None:
        picture = viz.draw_boxes(
            picture,
            [view.region],
            labels=["region"],
            colors=[(255, 255, 255)],
            thickness=thickness,
            font_size=font,
        )
    return picture
