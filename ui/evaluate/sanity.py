"""Sanity checks (Adebayo et al. 2018): cascading and independent model-parameter randomisation, and the
random-logit test. The library randomises a deep copy of the model; the shared one is never touched."""

from __future__ import annotations

import streamlit as st

import saliency_core as sc
from saliency_core import viz
from saliency_core.methods.context import ProgressFn
from ui import cards, display, params, resources, results, state
from ui.cards import SanityEntry
from ui.evaluate import common
from ui.layers import choices as layer_choices
from ui.view import View
from ui.widgets.progress import Job

TESTS = {"Cascading": "cascading", "Independent": "independent", "Random logit": "random_logit"}
EXPLAIN = {
    "cascading": "Re-initialise the model's blocks from the output down, one more at each stage, and recompute "
    "the map. A map that explains the model should change more and more (similarity falling towards 0).",
    "independent": "Re-initialise one block at a time (the others keep their trained weights). Each block the "
    "model relies on should change the map.",
    "random_logit": "Explain a random other class instead of the target. A map that still looks the same does "
    "not depend on which class is asked about.",
}


def section(view: View) -> None:
    st.caption(
        "Would the map look different if the model had learned nothing? Maps that survive randomisation "
        "unchanged show the image (edges, colours), not the model."
    )
    if common.no_target(view):
        return
    tests = dict(TESTS)
    if view.model.task != "classification":
        tests.pop("Random logit")
    infos = resources.methods(view.model)
    by_id = {m.id: m for m in infos}
    layers = layer_choices(view)
    with st.container(border=True):
        state.default(state.SANITY_TEST, "Cascading", allowed=list(tests))
        test = st.segmented_control("Test", list(tests), key=state.SANITY_TEST, required=True)
        kind = tests[str(test)]
        explain = EXPLAIN[kind]
        if view.model.task != "classification":
            explain += (
                " (The random-logit test needs class logits: it applies to classification models only.)"
            )
        st.caption(explain)
        state.default(
            state.SANITY_METHOD, resources.first_featured("evaluate", list(by_id)), allowed=list(by_id)
        )
        form, more = st.columns(2, gap="medium")
        with form:
            method = st.selectbox(
                "Method", list(by_id), key=state.SANITY_METHOD, format_func=lambda i: by_id[i].title
            )
            info = by_id[method]
            st.caption("Its parameters (shared with Explore):")
            values = params.form(info, layers, view)
        with more:
            stages, seed = _run_controls(view, kind)
        maps = 2 if kind == "random_logit" else len(stages) + 1
        text, _ = results.estimate_text(view, info, values)
        st.caption(f":material/timer: **Cost:** {maps} maps of {info.title}, each {text}")
        key = entry_key(view, kind, info.id, values, stages, seed)
        common.run_button(
            state.SANITY_PENDING, key, "Run the check", disabled=not stages and kind != "random_logit"
        )
    st.info(
        "Randomisation runs on a private copy of the model: the shared model, and every map computed from "
        "it, stays untouched.",
        icon=":material/content_copy:",
    )
    common.show_cancelled()
    entry = cards.store().get(key)
    if entry is None and results.should_run(state.SANITY_PENDING, key, auto=False):
        entry = common.run_jobs(state.SANITY_PENDING, [_job(view, kind, info, values, stages, seed)])[0]
    if entry is None:
        st.caption("Press **Run the check** to compute it.")
        return
    if kind == "random_logit":
        _show_random_logit(entry)
    else:
        _show_stages(entry)


def entry_key(view: View, kind: str, method: str, values: dict, stages: list[str], seed: int) -> tuple:
    used = () if kind == "random_logit" else tuple(stages)
    return ("sanity", *cards.view_key(view), kind, method, results.params_key(values), used, seed)


def _run_controls(view: View, kind: str) -> tuple[list[str], int]:
    stages: list[str] = []
    if kind != "random_logit":
        options = sc.metrics.default_stages(view.model.module)
        k = state.sanity_stages(view.info.id)
        if not isinstance(st.session_state.get(k), list):
            st.session_state[k] = list(options)
        st.session_state[k] = [s for s in st.session_state[k] if s in options]
        chosen = st.multiselect(
            "Blocks to randomise (output first)",
            options,
            key=k,
            help="The model's learnable blocks, from the output down. Fewer blocks: a quicker check.",
        )
        stages = [s for s in options if s in chosen]
    state.default(state.SANITY_SEED, 0)
    seed = st.number_input(
        "Seed",
        0,
        2**31 - 1,
        step=1,
        key=state.SANITY_SEED,
        help="Seeds the re-initialised weights (or, for the random-logit test, the other class).",
    )
    return stages, int(seed)


def _job(view: View, kind: str, info: sc.MethodInfo, values: dict, stages: list[str], seed: int) -> Job:
    key = entry_key(view, kind, info.id, values, stages, seed)

    def work(progress: ProgressFn) -> SanityEntry:
        if kind == "random_logit":
            found = sc.metrics.random_logit(
                view.model, view.x, view.target, info.id, seed=seed, progress=progress, method_params=values
            )
            labels = [found.target.describe(), found.other.describe()]
            spearman, ssim = [1.0, float(found.spearman)], [1.0, float(found.ssim)]
        else:
            run = (
                sc.metrics.cascading_randomization
                if kind == "cascading"
                else sc.metrics.independent_randomization
            )
            found = run(
                view.model,
                view.x,
                view.target,
                info.id,
                seed=seed,
                stages=stages,
                progress=progress,
                method_params=values,
            )
            labels = list(found.stages)
            spearman, ssim = [float(v) for v in found.spearman], [float(v) for v in found.ssim]
        maps = [viz.as_map(m) for m in found.maps]
        entry = SanityEntry(kind, info.id, info.title, dict(values), seed, labels, maps, spearman, ssim)
        cards.store().put(key, entry)
        return entry

    return Job(f"{info.title}: {kind.replace('_', ' ')} check", work, key=key)


def _tiles(entry: SanityEntry, captions: list[str], columns: int) -> None:
    shown = display.current()
    pictures = [viz.apply_colormap(viz.normalise(m, "absolute", shown.clip), shown.cmap) for m in entry.maps]
    for first in range(0, len(pictures), columns):  # one row at a time, so that rows stay aligned
        row = st.columns(columns)
        for column, picture, caption in zip(row, pictures[first:], captions[first : first + columns]):
            column.image(picture, caption=caption, width="stretch")


def _show_stages(entry: SanityEntry) -> None:
    verb = "up to" if entry.kind == "cascading" else "only"
    captions = ["original (trained weights)"] + [
        f"{verb} {name} · ρ {rho:.2f} · SSIM {s:.2f}"
        for name, rho, s in zip(entry.stages[1:], entry.spearman[1:], entry.ssim[1:])
    ]
    st.markdown(f"**{entry.title}**, absolute maps, each on its own scale:")
    _tiles(entry, captions, 3 if len(captions) <= 6 else 4)
    figure = sc.metrics.sanity_figure(
        sc.metrics.SanityResult(entry.kind, entry.title, entry.stages, [], entry.spearman, entry.ssim)
    )
    figure.update_layout(height=340, legend={"orientation": "h", "y": -0.3})
    st.plotly_chart(figure, config={"displaylogo": False})
    last = entry.spearman[-1]
    verdict = (
        "the map changed: it depends on the learned weights."
        if last < 0.5
        else "the map barely changed: it does not depend much on what the model learned."
    )
    st.caption(
        f"Spearman rank correlation and SSIM of the absolute maps against the original. Last stage: ρ = "
        f"{last:.2f}; {verdict}"
    )


def _show_random_logit(entry: SanityEntry) -> None:
    captions = [f"for the target: {entry.stages[0]}", f"for another class: {entry.stages[1]}"]
    st.markdown(f"**{entry.title}**, absolute maps:")
    _tiles(entry, captions, 3)
    rho, ssim = entry.spearman[1], entry.ssim[1]
    verdict = (
        "they differ: the map depends on the class asked about."
        if rho < 0.5
        else "they are alike: the map hardly depends on the class asked about."
    )
    st.markdown(f"Similarity of the two maps: Spearman ρ = **{rho:.2f}**, SSIM = **{ssim:.2f}**; {verdict}")
