"""Activation maximisation: an input optimised to excite a class score or a channel of a layer, with jitter
and blur regularisation. Gradients are taken w.r.t. the input only; the model is never changed."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

import saliency_core as sc
from saliency_core.methods.context import ProgressFn
from ui import cards, results, state
from ui.cards import ActMaxEntry
from ui.evaluate import common
from ui.layers import choices as layer_choices
from ui.view import View
from ui.widgets.progress import Job

OBJECTIVES = ["Class score", "Layer channel"]
STARTS = ["Noise", "Current image"]
# Chosen on the demo model: shapes appear within a hundred steps (lr 0.05 leaves mostly noise).
DEFAULTS = {
    state.AM_STEPS: 96,
    state.AM_LR: 0.2,
    state.AM_JITTER: 4,
    state.AM_BLUR_SIGMA: 1.0,
    state.AM_BLUR_EVERY: 2,
    state.AM_SEED: 0,
    state.AM_CHANNEL: 0,
}


def section(view: View) -> None:
    st.caption(
        "What would excite the model most? Start from noise (or the image) and follow the gradient of a class "
        "score or of one channel of a layer. Jitter (random shifts) and blur keep the picture from turning "
        "into high-frequency noise."
    )
    settings = _controls(view)
    common.show_cancelled()
    key = entry_key(view, settings)
    entry = cards.store().get(key)
    if entry is None and results.should_run(state.AM_PENDING, key, auto=False):
        entry = common.run_jobs(state.AM_PENDING, [_job(view, settings, key)])[0]
    if entry is None:
        st.caption("Press **Optimise** to start.")
        return
    _show(view, entry)


def entry_key(view: View, settings: dict) -> tuple:
    image = view.image.digest if settings["start"] == "image" else None
    return ("actmax", view.info.id, view.weights, image, tuple(sorted(settings.items())))


def _controls(view: View) -> dict:
    for key, value in DEFAULTS.items():
        state.default(key, value)
    classification = view.model.task == "classification" and bool(view.model.categories)
    objectives = OBJECTIVES if classification else OBJECTIVES[1:]
    settings: dict = {}
    with st.container(border=True):
        what, start_col = st.columns(2, gap="medium")
        state.default(state.AM_OBJECTIVE, objectives[0], allowed=objectives)
        objective = what.segmented_control("Maximise", objectives, key=state.AM_OBJECTIVE, required=True)
        state.default(state.AM_START, STARTS[0], allowed=STARTS)
        start = start_col.segmented_control("Start from", STARTS, key=state.AM_START, required=True)
        settings["start"] = "noise" if start == "Noise" else "image"
        if not classification:
            st.caption(
                f"Class scores apply to classification models; this {view.model.task} model offers its "
                "layers' channels."
            )
        left, right = st.columns(2, gap="medium")
        if objective == "Class score":
            names = view.model.categories
            k = state.am_class(view.info.id)
            state.default(k, int(getattr(view.target, "index", 0) or 0), allowed=list(range(len(names))))
            index = left.selectbox(
                "Class", list(range(len(names))), key=k, format_func=lambda i: f"{i}: {names[i]}"
            )
            settings |= {"objective": "class", "class": int(index)}
        else:
            layers = layer_choices(view)
            k = state.am_layer(view.info.id)
            state.default(k, layers[0], allowed=layers)
            layer = left.selectbox("Layer", layers, key=k, format_func=layers.label)
            channel = right.number_input(
                "Channel", 0, None, step=1, key=state.AM_CHANNEL, help="Which channel of the layer (from 0)."
            )
            settings |= {"objective": "channel", "layer": layer, "channel": int(channel)}
        one, two, three = st.columns(3, gap="medium")
        settings["steps"] = int(
            one.slider("Steps", 1, 512, key=state.AM_STEPS, help="Optimiser (Adam) steps.")
        )
        settings["lr"] = float(
            two.slider("Learning rate", 0.005, 0.5, step=0.005, key=state.AM_LR, help="Adam's step size.")
        )
        settings["jitter"] = int(
            three.slider("Jitter (px)", 0, 32, key=state.AM_JITTER, help="Random shift before every step.")
        )
        settings["blur_sigma"] = float(
            one.slider("Blur (sigma)", 0.0, 2.0, step=0.1, key=state.AM_BLUR_SIGMA, help="0: no blur.")
        )
        settings["blur_every"] = int(
            two.slider("Blur every (steps)", 0, 16, key=state.AM_BLUR_EVERY, help="0: never.")
        )
        settings["seed"] = int(three.number_input("Seed", 0, 2**31 - 1, step=1, key=state.AM_SEED))
        seconds = _estimate(view, settings["steps"])
        st.caption(
            f":material/timer: **Cost:** {settings['steps']} forward + {settings['steps']} backward passes"
            + (f", about {results.format_seconds(seconds)}" if seconds else " (time known after a first run)")
            + ". Only the input is optimised: the model's weights never change."
        )
        common.run_button(state.AM_PENDING, entry_key(view, settings), "Optimise")
    return settings


def _estimate(view: View, steps: int) -> float | None:
    """Seconds for `steps` steps, from the last run on this model (None before the first)."""
    runs = [e for _, e in cards.store().matching(("actmax", view.info.id, view.weights))]
    if not runs:
        return None
    last = runs[-1].result
    return last.seconds / max(len(last.scores), 1) * steps


def _job(view: View, settings: dict, key: tuple) -> Job:
    def work(progress: ProgressFn) -> ActMaxEntry:
        objective = settings["class"] if settings["objective"] == "class" else "channel"
        found = sc.metrics.activation_maximization(
            view.model,
            objective,
            layer=settings.get("layer"),
            channel=settings.get("channel"),
            steps=settings["steps"],
            lr=settings["lr"],
            jitter=settings["jitter"],
            blur_every=settings["blur_every"],
            blur_sigma=settings["blur_sigma"],
            start=settings["start"],
            x=view.x,
            seed=settings["seed"],
            progress=progress,
        )
        entry = ActMaxEntry((view.info.id, view.weights), dict(settings), found)
        cards.store().put(key, entry)
        return entry

    return Job("Activation maximisation", work, key=key)


def _show(view: View, entry: ActMaxEntry) -> None:
    result = entry.result
    from_image = entry.settings["start"] == "image"
    columns = st.columns([1, 1, 1.8] if from_image else [1, 1.8], gap="medium")
    if from_image:
        columns[0].image(view.picture, caption="Start: the current image", width="stretch")
    columns[-2].image(result.image, caption=f"Maximises {result.objective}", width="stretch")
    figure = go.Figure(go.Scatter(y=result.scores, mode="lines", name="objective"))
    figure.update_layout(
        title="Objective per step",
        xaxis_title="step",
        yaxis_title="score" if entry.settings["objective"] == "class" else "mean activation",
        height=300,
        margin={"l": 40, "r": 10, "t": 40, "b": 10},
    )
    columns[-1].plotly_chart(figure, config={"displaylogo": False})
    start = "the current image" if from_image else "noise (seeded)"
    st.caption(
        f"From {start}: {result.objective} went from {result.initial_score:.3g} to {result.final_score:.3g} "
        f"in {len(result.scores)} steps ({results.format_seconds(result.seconds)})."
    )
