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
    """What the sidebar selected; `x` is the model input (opaque here: only saliency_core touches it)."""

    image: ImageChoice
    info: sc.ModelInfo
    weights: str  # "default" | "random"
    model: sc.LoadedModel
    x: Any = field(repr=False)
    picture: np.ndarray = field(repr=False)  # the uint8 picture the model sees (maps are drawn over this)
    predictions: list[sc.Target] = field(repr=False)
    target_index: int = 0

    @property
    def target(self) -> sc.Target | None:
        if not self.predictions:
            return None
        return self.predictions[min(self.target_index, len(self.predictions) - 1)]

    @property
    def target_label(self) -> str:
        target = self.target
        return target.describe() if target is not None else "(no target)"

    def target_key(self) -> tuple:
        target = self.target
        return target.key() if target is not None else ()

    def base_key(self) -> tuple:
        """Identity of (image, model, weights): what predictions depend on."""
        return (self.image.digest, self.info.id, self.weights)


def prepare(choice: ImageChoice, model: sc.LoadedModel) -> tuple[Any, np.ndarray]:
    """(model input, the picture it shows), prepared once per session, image and model."""
    cache = st.session_state.setdefault("view.prepared", {})
    key = (choice.digest, model.id, model.weights)
    if key not in cache:
        cache.clear()
        x = model.preprocess(images.pil(choice))
        cache[key] = (x, viz.to_rgb_uint8(model.to_image(x)))
    return cache[key]


def top_k(info: sc.ModelInfo) -> int:
    """How many predictions the target picker offers: all classes of a small model, else five."""
    return info.num_classes if 0 < info.num_classes <= 10 else 5


def current() -> View | None:
    """The view built by the sidebar in this run (None when no image or model is usable)."""
    return st.session_state.get(state.VIEW)


def require() -> View:
    """The current view, or a short explanation and a stop of the page when there is none."""
    found = current()
    if found is None:
        st.info("Choose an image and a model in the sidebar to begin.")
        st.stop()
    return found


def prediction_picture(view: View, highlight: int | None = None) -> np.ndarray:
    """The picture with whatever the predictions carry (boxes, keypoints, masks) drawn on it.

    Classification targets carry none, so this is the plain picture; other tasks' targets plug in here.
    """
    picture = view.picture
    index = view.target_index if highlight is None else highlight
    target = view.predictions[index] if 0 <= index < len(view.predictions) else None
    if target is None:
        return picture
    boxes = [getattr(t, "box", None) for t in view.predictions]
    if any(b is not None for b in boxes):
        shown = [i for i, b in enumerate(boxes) if b is not None]
        picture = viz.draw_boxes(
            picture,
            [boxes[i] for i in shown],
            labels=[view.predictions[i].describe() for i in shown],
            highlight=shown.index(index) if index in shown else None,
        )
    keypoints = getattr(target, "keypoints", None)
    if keypoints is not None:
        names = list(getattr(target, "keypoint_names", ()) or ())
        chosen = getattr(target, "keypoint", None)  # an index or a name
        highlight_point = (
            chosen if isinstance(chosen, int) else (names.index(chosen) if chosen in names else None)
        )
        picture = viz.draw_keypoints(
            picture,
            keypoints,
            skeleton=getattr(target, "skeleton", ()) or (),
            highlight=highlight_point,
            names=names or None,
        )
    mask = getattr(target, "mask", None)
    if mask is not None:
        picture = viz.draw_mask(picture, mask)
    return picture
