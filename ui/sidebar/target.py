"""Sidebar: what to explain, per task (a class, a detection, a person and keypoint, a region)."""

from __future__ import annotations

import numpy as np
import streamlit as st

import saliency_core as sc
from saliency_core import viz
from ui import images, resources, state
from ui.sidebar.model import weights_key
from ui.view import View, prediction_picture, prepare, top_k

THRESHOLD_DEFAULT = 0.5
_PER_BASE = (state.KEYPOINT, state.REGION_ON, state.REGION_X, state.REGION_Y)  # reset for a new image/model


def section(choice: images.ImageChoice, model: sc.LoadedModel) -> View | None:
    """The target picker for the model's task; None when there is nothing to explain."""
    st.subheader("Explain")
    info = resources.model_info(model.id)
    if info is None:
        return None
    task = model.task
    threshold = 0.0
    if task in ("detection", "keypoints"):
        state.default(state.THRESHOLD, THRESHOLD_DEFAULT)
        threshold = float(
            st.slider(
                "Score threshold",
                0.05,
                0.95,
                step=0.05,
                key=state.THRESHOLD,
                help=f"{'Detections' if task == 'detection' else 'Persons'} scoring below this are not "
                "listed or drawn (the model itself drops those below 0.05).",
            )
        )
    try:
        x, picture = prepare(choice, model)
        predictions = model.predict(x, top_k=top_k(info), threshold=threshold)
    except sc.SaliencyError as exc:
        st.error(f"The model cannot run on this image: {exc}")
        return None
    weights = weights_key(model.id)
    base = (choice.digest, model.id, weights)
    lost = ""
    if st.session_state.get(state.BASE) != base:
        # A new image or model: its predictions differ, so start from the top one (unless a link chose).
        st.session_state[state.BASE] = base
        if not st.session_state.pop(state.KEEP_TARGET, False):
            st.session_state[state.TARGET] = 0
            for key in _PER_BASE:
                st.session_state.pop(key, None)
    else:
        previous = st.session_state.get(state.TARGET)
        if isinstance(previous, int) and previous >= len(predictions):
            lost = st.session_state.get(state.TARGET_LABEL, "")
    options = list(range(len(predictions)))
    state.default(state.TARGET, 0, allowed=options)
    index = 0
    problem = ""
    if options:
        index = int(
            st.selectbox(
                _picker_title(task),
                options,
                key=state.TARGET,
                format_func=lambda i: _target_label(predictions[i], i, task),
                help=_picker_help(task, len(options)),
            )
            or 0
        )
    else:
        problem = _nothing_predicted(task, threshold, weights)
    if lost:
        what = "person" if task == "keypoints" else "detection"
        instead = "Now explaining the best one; pick another" if predictions else "Lower the threshold"
        st.warning(
            f"The chosen {what} ({lost}) is no longer listed: it scores below the threshold "
            f"{threshold:.2f}. {instead}.",
            icon=":material/search_off:",
        )
    chosen, region = None, None
    if predictions and task == "keypoints":
        chosen = _keypoint_picker(predictions[index])
    elif predictions and task == "segmentation":
        chosen, region, problem = _region_picker(predictions[index], picture.shape[:2])
    view = View(
        image=choice,
        info=info,
        weights=weights,
        model=model,
        x=x,
        picture=picture,
        predictions=predictions,
        target_index=index,
        chosen=chosen,
        problem=problem,
        region=region,
        threshold=threshold if task in ("detection", "keypoints") else None,
    )
    if problem:
        st.warning(problem, icon=":material/search_off:")
    if view.target is not None:
        st.session_state[state.TARGET_LABEL] = view.target_label
    else:
        st.session_state.pop(state.TARGET_LABEL, None)
    if task != "classification":
        st.image(
            prediction_picture(view),
            caption=_picture_caption(task, len(predictions)),
            width="stretch",
        )
    return view


def _picker_title(task: str) -> str:
    return {
        "detection": "Detection",
        "keypoints": "Person",
        "segmentation": "Class",
        "salient_object": "Salient region",
    }.get(task, "Target")


def _picker_help(task: str, n: int) -> str:
    if task == "detection":
        return (
            f"What to explain: one of the {n} detections above the threshold, best first (its class score)."
        )
    if task == "keypoints":
        return f"Whose keypoint to explain: one of the {n} persons above the threshold, best first."
    if task == "segmentation":
        return (
            f"What to explain: one of the {n} classes present, largest first, summed over its predicted mask "
            "(its share of the image, and p: its mean probability there)."
        )
    if task == "salient_object":
        return (
            "The region the model predicts as salient (probability above 0.5), summed over: its share of "
            "the image, and p: its mean probability."
        )
    return f"What to explain: the model's {n} best predictions on this image, best first."


def _picture_caption(task: str, n: int) -> str:
    return {
        "detection": f"{n} detections; the chosen one highlighted",
        "keypoints": f"{n} persons; the chosen one's skeleton and keypoint",
        "segmentation": "The chosen class's predicted mask",
        "salient_object": "The predicted salient region",
    }.get(task, "Predictions")


def _nothing_predicted(task: str, threshold: float, weights: str) -> str:
    note = " (random weights detect nothing useful)" if weights == "random" else ""
    if task == "detection":
        return (
            f"No detection scores {threshold:.2f} or more on this image{note}: there is nothing to explain. "
            "Lower the score threshold, or try another image."
        )
    if task == "keypoints":
        return (
            f"No person scores {threshold:.2f} or more on this image{note}: there is nothing to explain. "
            "Lower the score threshold, or try an image with people."
        )
    if task == "salient_object":
        return (
            "The model predicts no salient region on this image (no pixel with probability above 0.5): "
            "there is nothing to explain."
        )
    return "The model predicts nothing on this image, so there is nothing to explain."


def _target_label(target: sc.Target, rank: int, task: str = "classification") -> str:
    if task == "detection":
        x0, y0 = (round(float(v)) for v in target.box[:2])
        return f"{rank + 1}. {target.label} — {target.score:.2f} (at {x0}, {y0})"
    if task == "keypoints":
        score = getattr(target, "person_score", None)
        return f"{target.person} — {score:.2f}" if score is not None else target.person
    if task in ("segmentation", "salient_object") and target.mask is not None:
        share = float(viz.as_map(target.mask).mean())
        score = f" (p {target.score:.2f})" if target.score is not None else ""
        name = f"{rank + 1}. {target.label}" if task == "segmentation" else "region"
        return f"{name} — {share:.0%}{score}"
    score = f" — {target.score:.1%}" if target.score is not None else ""
    return f"{rank + 1}. {target.describe()}{score}"


# --- keypoints and regions ---------------------------------------------------------------------------------
def _keypoint_picker(person: sc.Target) -> sc.Target:
    names = list(person.keypoint_names)
    state.default(state.KEYPOINT, person.keypoint_name, allowed=names)
    logits = viz.to_numpy(person.keypoints)[:, 2] if person.keypoints is not None else None
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
    return person.with_keypoint(name)


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


REGION_HELP = (
    "Explain the class only inside a rectangle: the target becomes the class's logits summed over the "
    "pixels that are inside the rectangle and predicted as this class (rectangle ∧ predicted mask). "
    "A rectangle around one of two objects of a class thus explains that one. Pixels the model gives to "
    "another class do not count, so a rectangle holding none of this class has nothing to explain."
)


def _region_picker(
    target: sc.Target, size: tuple[int, int]
) -> tuple[sc.Target | None, tuple[int, int, int, int] | None, str]:
    """(the class restricted to a rectangle, the rectangle, a problem) or (None, None, "") when off."""
    h, w = size
    on = st.toggle("Only inside a rectangle", key=state.REGION_ON, help=REGION_HELP)
    if not on:
        return None, None, ""
    predicted = viz.as_map(target.mask) if target.mask is not None else np.ones((h, w), np.float32)
    x0, y0, x1, y1 = _bounding_box(predicted)
    if not _valid_range(st.session_state.get(state.REGION_X), w):
        st.session_state[state.REGION_X] = (x0, x1)
    if not _valid_range(st.session_state.get(state.REGION_Y), h):
        st.session_state[state.REGION_Y] = (y0, y1)
    xs = st.slider("Rectangle x (pixels)", 0, w, key=state.REGION_X, help="Left and right edges.")
    ys = st.slider("Rectangle y (pixels)", 0, h, key=state.REGION_Y, help="Top and bottom edges.")
    rect = (int(xs[0]), int(ys[0]), int(xs[1]), int(ys[1]))
    inside = np.zeros((h, w), np.float32)
    inside[rect[1] : rect[3], rect[0] : rect[2]] = 1.0
    region = (predicted > 0.5).astype(np.float32) * inside
    if not region.any():
        problem = str(
            sc.TargetNotFound(
                f"Nothing to explain: no pixel inside the rectangle ({rect[0]}, {rect[1]}, {rect[2]}, "
                f"{rect[3]}) is predicted as '{target.label}'. Move the rectangle over the class's mask "
                "(outlined on the picture) or turn the rectangle off."
            )
        )
        return None, rect, problem
    share = float(region.mean())
    restricted = sc.ClassTarget(
        int(target.index),
        label=f"{target.label} inside ({rect[0]}, {rect[1]}, {rect[2]}, {rect[3]}), {share:.0%} of the image",
        score=target.score,
        mask=region,
    )
    return restricted, rect, ""
