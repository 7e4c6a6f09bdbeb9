"""The Explore view's panels: the method panel (picker, parameters, cost, Run) and the result panel."""

from __future__ import annotations

from typing import Any

import streamlit as st

import saliency_core as sc
from ui import cards, display, export, params, results, share, state, tasks
from ui.layers import choices as layer_choices
from ui.text import md
from ui.view import View

AUTO_RUN_SECONDS = 1.5  # methods estimated faster than this run as soon as they are chosen


def method_panel(view: View) -> tuple[sc.MethodInfo, dict[str, Any], bool]:
    """Method picker, its parameters (in a popover, so the panel stays two rows high), the cost and Run.

    Returns (method, parameter values, whether it may run without a click).
    """
    with st.container(border=True):
        family_row = st.container()
        pick, form, run = st.columns([1.2, 1, 1.1], gap="small", vertical_alignment="bottom")
        info = params.method_picker(view.model, family_area=family_row, method_area=pick)
        with form.popover("Parameters", icon=":material/tune:", width="stretch"):
            st.caption(info.description)
            values = params.form(info, layer_choices(view), view)
        text, _ = results.estimate_text(view, info, values)
        key = results.request_key(view, info, values)
        auto = results.is_cheap(view, info, values, AUTO_RUN_SECONDS)
        with run:
            st.button(
                "Run",
                key=f"{state.ACTION_PREFIX}run",
                type="primary",
                icon=":material/play_arrow:",
                on_click=results.request,
                args=(state.PENDING, key),
                width="stretch",
                help="Fast methods run as soon as they are chosen; slower ones wait for this button.",
            )
        summary = md(results.describe_params(values), limit=None)
        st.caption(f"{summary or 'no parameters'} · :material/timer: **Cost:** {text}")
        slow = results.cost_warning(view, info, values)
        if slow:
            st.warning(slow, icon=":material/hourglass_top:")
    return info, values, auto


def result_panel(view: View, info: sc.MethodInfo, values: dict[str, Any], auto: bool) -> None:
    """The stored map (computing it if asked), then, in a fragment, its view, the display settings, exports
    and the share link: a display change reruns only the fragment and recomputes nothing."""
    key = results.request_key(view, info, values)
    results.show_cancelled()
    missing = view.missing_target() if info.needs_target else ""
    result = None
    if not missing:
        result = results.store().get(key)
        if result is None and results.should_run(state.PENDING, key, auto):
            st.session_state[state.PENDING] = key
            display.ensure_defaults()
            draw = display.preview_drawer(view, display.current(), {info.title: info.id})
            result = results.run_with_progress(view, [(info.title, info, values)], state.PENDING, draw)[0]
    _shown(view, info, values, result, missing)


@st.fragment
def _shown(
    view: View,
    info: sc.MethodInfo,
    values: dict[str, Any],
    result: results.Result | None,
    missing: str,
) -> None:
    """Everything that depends on the display settings; a widget in here reruns only this function."""
    display.ensure_defaults()
    shown = display.current()
    if missing or result is None:
        if missing:
            st.warning(md(missing, limit=None), icon=":material/search_off:")
        else:
            st.info(
                f"Press **Run** to compute {info.title} for **{md(view.target_label)}**.",
                icon=":material/play_arrow:",
            )
        st.image(
            display.input_png(view),
            caption=f"Input as the model sees it · target: {md(view.target_label)}",
            width=480,
        )
        display.controls()
        _reference_panel(view, shown)
        return
    display.result_view(view, result, shown)
    display.controls()
    display.made(result)
    _reference_panel(view, shown)
    st.divider()
    _exports(view, result, shown)
    link = share.sync(view, info, values, shown)  # in the fragment: the link follows every display change
    with st.expander("Share this view", icon=":material/link:"):
        if link:
            st.code(link, language=None)
        st.caption(share.link_note(view))


def _reference_panel(view: View, shown: display.Display) -> None:
    """What the task shows under the map (salient objects: the model's output beside a reference)."""
    tasks.get(view.task).extra_panel(view, shown)


def _exports(view: View, result: results.Result, shown: display.Display) -> None:
    content = export.card(view, [result], shown, metrics=cards.metrics_for(view, result))
    stem = f"{export.file_stem(view)}_{result.method}"
    export.downloads(
        png=lambda: export.view_picture_png(view, result, shown),
        npz=lambda: export.maps_npz(view, [result], shown, content=content),
        content=content,
        stem=stem,
        key="explore",
    )
