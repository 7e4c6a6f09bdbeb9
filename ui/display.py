"""Display settings (colormap, opacity, sign, clip) and the result view: input, overlay, interactive heatmap.

Display settings only change how a stored map is drawn; nothing here computes a map.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import streamlit as st

from saliency_core import viz
from ui import resources, state
from ui.results import Result, describe_params, format_seconds
from ui.text import md
from ui.view import View, prediction_picture

SIGN_CHOICES = ["auto", "positive", "negative", "absolute", "signed"]
SIGN_HELP = (
    "Which part of the signed map to show. auto: the magnitude for gradient methods (their sign mostly "
    "follows the input's colours), the positive part otherwise. signed: both signs, use a diverging colormap."
)


@dataclass(frozen=True)
class Display:
    cmap: str = "inferno"
    alpha: float = 0.5
    sign: str = "auto"
    clip: float = 99.5
    alpha_by_value: bool = False
    shared: bool = False

    def sign_for(self, method_id: str) -> str:
        """The sign drawn: the user's choice, or for "auto" the one the method declares."""
        if self.sign != "auto":
            return self.sign
        info = resources.method(method_id)
        return info.sign if info is not None else "positive"

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULTS = Display()
# (min, max, step) of the sliders, also what share links are clamped to (ui/share.py)
ALPHA_RANGE = (0.0, 1.0, 0.05)
CLIP_RANGE = (80.0, 100.0, 0.5)


def current() -> Display:
    """The display settings in the session (defaults until the user changes them)."""
    get = st.session_state.get
    return Display(
        cmap=get(state.CMAP, DEFAULTS.cmap),
        alpha=float(get(state.ALPHA, DEFAULTS.alpha)),
        sign=get(state.SIGN, DEFAULTS.sign),
        clip=float(get(state.CLIP, DEFAULTS.clip)),
        alpha_by_value=bool(get(state.ALPHA_BY_VALUE, DEFAULTS.alpha_by_value)),
        shared=bool(get(state.SHARED, DEFAULTS.shared)),
    )


def controls(show_shared: bool = False) -> Display:
    """The display widgets in one row; returns the settings."""
    state.default(state.CMAP, DEFAULTS.cmap, allowed=list(viz.COLORMAPS))
    state.default(state.ALPHA, DEFAULTS.alpha)
    state.default(state.SIGN, DEFAULTS.sign, allowed=SIGN_CHOICES)
    state.default(state.CLIP, DEFAULTS.clip)
    state.default(state.ALPHA_BY_VALUE, DEFAULTS.alpha_by_value)
    state.default(state.SHARED, DEFAULTS.shared)
    columns = st.columns([1.2, 1.1, 1.2, 1.2])
    columns[0].selectbox("Colormap", list(viz.COLORMAPS), key=state.CMAP)
    lo, hi, step = ALPHA_RANGE
    columns[1].slider("Opacity", lo, hi, step=step, key=state.ALPHA, help="0 shows the image, 1 the map.")
    columns[2].selectbox("Sign", SIGN_CHOICES, key=state.SIGN, help=SIGN_HELP)
    columns[3].slider(
        "Clip (percentile)",
        CLIP_RANGE[0],
        CLIP_RANGE[1],
        step=CLIP_RANGE[2],
        key=state.CLIP,
        help="Values above this percentile saturate, so a few extreme pixels do not wash out the rest.",
    )
    with st.container(horizontal=True, gap="large"):
        st.toggle(
            "Opacity follows saliency",
            key=state.ALPHA_BY_VALUE,
            help="Low-saliency pixels stay transparent, so the image shows through.",
        )
        if show_shared:
            st.toggle(
                "Shared scale",
                key=state.SHARED,
                help="On: every map uses one range (the largest), so strengths compare across maps. "
                "Off: each map is stretched to its own range.",
            )
    return current()


def map01(result: Result, display: Display, scale: float | None = None) -> np.ndarray:
    """The stored map as displayed: rectified by sign, clipped at the percentile, in [0, 1]."""
    return viz.normalise(result.map, display.sign_for(result.method), display.clip, scale)


def overlay(view: View, result: Result, display: Display, scale: float | None = None) -> np.ndarray:
    return viz.overlay(
        view.picture, map01(result, display, scale), display.cmap, display.alpha, display.alpha_by_value
    )


def provenance(result: Result) -> str:
    """'computed in 1.2 s on cpu' or 'from the engine cache'."""
    if result.engine_cached:
        return f"from the engine cache ({format_seconds(result.seconds)})"
    return f"computed in {format_seconds(result.seconds)} on {result.device}"


def result_view(view: View, result: Result, display: Display) -> None:
    """Input, overlay and interactive heatmap side by side, then how the map was made."""
    shown = map01(result, display)
    sign = display.sign_for(result.method)
    left, middle, right = st.columns([1, 1, 1.25], gap="medium")
    with left:
        st.image(
            prediction_picture(view), caption=f"Input as the model sees it · target: {md(view.target_label)}"
        )
    with middle:
        st.image(
            overlay(view, result, display),
            caption=f"{result.title} overlay ({sign}, {display.cmap})",
        )
    with right:
        figure = viz.heatmap_figure(result.map, shown, display.cmap, height=250)
        st.plotly_chart(figure, config={"displaylogo": False})
    if not shown.any():
        st.caption(
            f"Nothing to draw with sign = {sign}: the map has no such values. Try another sign (e.g. absolute)."
        )
    badges(result)
    for note in result.notes:  # e.g. a batch size lowered to fit memory, a run moved to the CPU
        st.caption(f":material/info: {note}")
    details = md(describe_params(result.params), limit=None) or "no parameters"
    st.caption(f"{result.title} · {details} · map range {result.map.min():.3g} … {result.map.max():.3g}")


def badges(result: Result) -> None:
    """Time, passes and whether the map came from the cache, as a row of badges."""
    with st.container(horizontal=True, gap="small"):
        if result.engine_cached:
            st.badge("from the engine cache", icon=":material/bolt:", color="green")
        else:
            st.badge(f"computed in {format_seconds(result.seconds)}", icon=":material/timer:", color="blue")
        st.badge(
            f"{result.forward_passes} forward / {result.backward_passes} backward passes",
            icon=":material/swap_vert:",
            color="gray",
        )
        st.badge(result.device, icon=":material/memory:", color="gray")
