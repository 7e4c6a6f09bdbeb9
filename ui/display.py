"""Display settings (colormap, opacity, sign, clip, style) and the result view: input, overlay, heatmap.

Display settings only change how a stored map is drawn; nothing here computes a map. Pictures are encoded
once per (map, settings) and kept in a small per-session store (ui/images.py `encoded`), so a redraw after a
settings change encodes only what changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import streamlit as st

from saliency_core import viz
from ui import images, resources, state
from ui.results import Result, describe_params, format_seconds
from ui.text import md
from ui.view import View, prediction_picture

SIGN_CHOICES = ["auto", "positive", "negative", "absolute", "signed"]
SIGN_HELP = (
    "Which part of the signed map to show. auto: the magnitude for gradient methods (their sign mostly "
    "follows the input's colours), the positive part otherwise. signed: both signs, use a diverging colormap."
)
STYLE_CHOICES = ["paper", "overlay", "gray", "smoothed"]
STYLE_TITLES = {
    "paper": "as the method's paper",
    "overlay": "overlay",
    "gray": "grayscale",
    "smoothed": "smoothed",
}
STYLE_HELP = (
    "How the map is drawn. overlay: coloured over the picture. grayscale: the magnitude alone, white = strong "
    "(how gradient papers show pixel-level maps). smoothed: the magnitude blurred, then overlaid. "
    "As the method's paper: the style the method declares."
)
PANEL = 220  # pixels: input, map and heatmap the same size; three fit beside a sidebar at 1000 px or wrap
COLORBAR = 70  # pixels beside the heatmap for its colorbar
HEATMAP_SIDE = 112  # the interactive heatmap's longest side: hover stays exact enough, the page stays light


@dataclass(frozen=True)
class Display:
    cmap: str = "inferno"
    alpha: float = 0.5
    sign: str = "auto"
    clip: float = 99.5
    alpha_by_value: bool = False
    shared: bool = False
    style: str = "paper"

    def style_for(self, method_id: str) -> str:
        """The style drawn: the user's choice, or for "paper" the one the method declares."""
        if self.style != "paper":
            return self.style
        info = resources.method(method_id)
        return info.display if info is not None else "overlay"

    def sign_for(self, method_id: str) -> str:
        """The sign drawn: the user's choice, or for "auto" the one the method declares (grayscale and
        smoothed styles show a magnitude where "signed" would be asked)."""
        sign = self.sign
        if sign == "auto":
            info = resources.method(method_id)
            sign = info.sign if info is not None else "positive"
        return viz.style_sign(self.style_for(method_id), sign)

    def cmap_for(self, method_id: str) -> str:
        """The colormap of the map's picture and heatmap ("gray" in the grayscale style)."""
        return "gray" if self.style_for(method_id) == "gray" else self.cmap

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
        style=get(state.STYLE, DEFAULTS.style),
    )


def ensure_defaults() -> None:
    """Put the display settings in the session (widgets then read their values from it)."""
    state.default(state.CMAP, DEFAULTS.cmap, allowed=list(viz.COLORMAPS))
    state.default(state.ALPHA, DEFAULTS.alpha)
    state.default(state.SIGN, DEFAULTS.sign, allowed=SIGN_CHOICES)
    state.default(state.CLIP, DEFAULTS.clip)
    state.default(state.ALPHA_BY_VALUE, DEFAULTS.alpha_by_value)
    state.default(state.SHARED, DEFAULTS.shared)
    state.default(state.STYLE, DEFAULTS.style, allowed=STYLE_CHOICES)


def controls(show_shared: bool = False) -> Display:
    """The display widgets in one row; returns the settings."""
    ensure_defaults()
    columns = st.columns([1.1, 1.2, 1, 1, 1.1])
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
    columns[4].selectbox(
        "Style", STYLE_CHOICES, key=state.STYLE, format_func=STYLE_TITLES.get, help=STYLE_HELP
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
    """The stored map as displayed: rectified by sign, clipped at the percentile (smoothed where the
    style says), in [0, 1]."""
    style = display.style_for(result.method)
    return viz.style_map(result.map, style, display.sign_for(result.method), display.clip, scale)


def overlay(view: View, result: Result, display: Display, scale: float | None = None) -> np.ndarray:
    """The map's picture in its style: an overlay, a smoothed overlay, or the grayscale magnitude alone."""
    return viz.style_picture(
        view.picture,
        map01(result, display, scale),
        display.style_for(result.method),
        display.cmap,
        display.alpha,
        display.alpha_by_value,
    )


def preview_drawer(view: View, display: Display, methods: dict[str, str]) -> Callable[[str, Any, str], None]:
    """Draws a progressive method's partial map (job label -> method id in `methods`) as it refines, in the
    map's style, with a caption saying it is not the final map."""

    def draw(label: str, partial: Any, what: str) -> None:
        method = methods.get(label, "")
        style = display.style_for(method)
        values = viz.style_map(partial, style, display.sign_for(method), display.clip)
        picture = viz.style_picture(
            view.picture, values, style, display.cmap, display.alpha, display.alpha_by_value
        )
        st.image(picture, caption=f"{md(label)} so far ({md(what)}…)", width=PANEL, output_format="PNG")

    return draw


def caption(result: Result, display: Display) -> str:
    """What the map's picture shows: 'Grad-CAM overlay (positive, jet)'."""
    style, sign = display.style_for(result.method), display.sign_for(result.method)
    if style == "gray":
        return f"{result.title} in grayscale ({sign}, white = strong)"
    kind = "smoothed overlay" if style == "smoothed" else "overlay"
    return f"{result.title} {kind} ({sign}, {display.cmap})"


def provenance(result: Result) -> str:
    """'computed in 1.2 s on cpu' or 'from the engine cache'."""
    if result.engine_cached:
        return f"from the engine cache ({format_seconds(result.seconds)})"
    return f"computed in {format_seconds(result.seconds)} on {result.device}"


def _drawn(result: Result, display: Display) -> tuple:
    """What decides the map's pictures: the result and the settings that change how it is drawn."""
    method = result.method
    return (
        id(result),
        result.created,
        display.style_for(method),
        display.sign_for(method),
        display.cmap_for(method),
        display.clip,
        display.alpha,
        display.alpha_by_value,
    )


def input_png(view: View) -> bytes:
    """The input picture with the predictions drawn, encoded once per view and target."""
    key = ("input", *view.base_key(), view.target_key(), view.target_index, view.region, view.threshold)
    return images.encoded(key, lambda: prediction_picture(view))


def overlay_png(view: View, result: Result, display: Display) -> bytes:
    return images.encoded(("overlay", *_drawn(result, display)), lambda: overlay(view, result, display))


def heatmap(result: Result, display: Display):  # -> plotly Figure (plotly imported only by viz)
    """The interactive heatmap, downsampled to HEATMAP_SIDE (built once per map and settings)."""
    return images.remembered(
        ("heatmap", *_drawn(result, display)),
        lambda: viz.heatmap_figure(
            result.map,
            map01(result, display),
            display.cmap_for(result.method),
            height=None,
            max_side=HEATMAP_SIDE,
            fill_height=True,
        ),
    )


def result_view(view: View, result: Result, display: Display) -> None:
    """Input, the map's picture and the interactive heatmap side by side, each PANEL pixels square (the
    row wraps on narrow screens, keeping the sizes), then a note when there is nothing to draw."""
    with st.container(horizontal=True, gap="small"):
        with st.container(width=PANEL + 8, gap=None):
            st.image(
                input_png(view),
                caption=f"Input as the model sees it · target: {md(view.target_label)}",
                width=PANEL,
                output_format="PNG",
            )
        with st.container(width=PANEL + 8, gap=None):
            st.image(
                overlay_png(view, result, display),
                caption=caption(result, display),
                width=PANEL,
                output_format="PNG",
            )
        with st.container(width=PANEL + COLORBAR, gap=None):
            st.plotly_chart(
                heatmap(result, display),
                config={"displaylogo": False},
                width=PANEL + COLORBAR,
                height=PANEL,
            )
    shown = map01(result, display)
    if not shown.any():
        sign = display.sign_for(result.method)
        st.caption(
            f"Nothing to draw with sign = {sign}: the map has no such values. Try another sign (e.g. absolute)."
        )


def made(result: Result) -> None:
    """Badges, the engine's notes and the parameters: how the map was made."""
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
        if result.mode:
            approximate = "approximate" in result.mode
            st.badge(
                f"mode: {result.mode}",
                icon=":material/blur_on:" if approximate else ":material/check_circle:",
                color="orange" if approximate else "gray",
            )
