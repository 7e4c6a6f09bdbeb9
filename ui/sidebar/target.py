"""Sidebar: what to explain. The task's UI module (ui/tasks/) titles and labels the picker, adds a score
threshold or pickers that refine the target (a keypoint, a rectangle), and says what is drawn."""

from __future__ import annotations

import streamlit as st

import saliency_core as sc
from ui import images, resources, state, tasks
from ui.sidebar.model import weights_key
from ui.tasks.detection import THRESHOLD_DEFAULT
from ui.text import md
from ui.view import View, prediction_picture, prepare


def section(choice: images.ImageChoice, model: sc.LoadedModel) -> View | None:
    """The target picker for the model's task; None when there is nothing to explain."""
    st.subheader("Explain")
    info = resources.info_for(model)
    task = tasks.get(model.task)
    threshold = _threshold(task) if task.threshold_noun else 0.0
    try:
        x, picture = prepare(choice, model)
        predictions = model.predict(x, top_k=task.top_k(info), threshold=threshold)
    except sc.SaliencyError as exc:
        st.error(f"The model cannot run on this image: {md(exc, limit=None)}")
        return None
    weights = weights_key(model.id)
    base = (choice.digest, model.id, weights)
    lost = ""
    if st.session_state.get(state.BASE) != base:
        # A new image or model: its predictions differ, so start from the top one (unless a link chose).
        st.session_state[state.BASE] = base
        if not st.session_state.pop(state.KEEP_TARGET, False):
            st.session_state[state.TARGET] = 0
            for key in tasks.per_base_keys():
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
                task.picker_title,
                options,
                key=state.TARGET,
                format_func=lambda i: task.target_label(predictions[i], i),
                help=task.picker_help(len(options)),
            )
            or 0
        )
    else:
        problem = task.nothing_predicted(threshold, weights)
    if lost:
        instead = "Now explaining the best one; pick another" if predictions else "Lower the threshold"
        st.warning(
            f"The chosen {task.lost_noun or 'prediction'} ({md(lost)}) is no longer listed: it scores below the "
            f"threshold {threshold:.2f}. {instead}.",
            icon=":material/search_off:",
        )
    chosen, region = None, None
    if predictions:
        chosen, region, refined_problem = task.refine(predictions[index], picture.shape[:2])
        problem = refined_problem or problem
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
        threshold=threshold if task.threshold_noun else None,
    )
    if problem:
        st.warning(md(problem, limit=None), icon=":material/search_off:")
    if view.target is not None:
        st.session_state[state.TARGET_LABEL] = view.target_label
    else:
        st.session_state.pop(state.TARGET_LABEL, None)
    caption = task.picture_caption(len(predictions))
    if caption:
        st.image(prediction_picture(view), caption=caption, width="stretch")
    return view


def _threshold(task: tasks.TaskUI) -> float:
    state.default(state.THRESHOLD, THRESHOLD_DEFAULT)
    return float(
        st.slider(
            "Score threshold",
            0.05,
            0.95,
            step=0.05,
            key=state.THRESHOLD,
            help=f"{task.threshold_noun} scoring below this are not listed or drawn (the model itself drops "
            "those below 0.05).",
        )
    )
