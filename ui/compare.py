"""The Compare page's pieces: choosing variants (several methods, or one method over a parameter), the grid,
the agreement matrices and the difference view."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import streamlit as st

import saliency_core as sc
from saliency_core import viz
from ui import clamp, display, export, params, resources, results, state, text
from ui.display import Display
from ui.layers import choices as layer_choices
from ui.layers import suggested
from ui.results import Result
from ui.text import md
from ui.view import View
from ui.widgets.variants import Variant, choose_methods

MODES = ["Methods", "One method, several settings"]
MAX_VARIANTS = 8
METHODS_HELP = "Each uses the parameters last set for it on the Explore page (defaults otherwise)."
AUTO_RUN_SECONDS = 3.0


# --- choosing variants ---------------------------------------------------------------------------------------
def choose_variants(view: View) -> list[Variant]:
    """The mode switch and its pickers; returns the variants to show."""
    state.default(state.COMPARE_MODE, MODES[0], allowed=MODES)
    mode = st.segmented_control(
        "Compare", MODES, key=state.COMPARE_MODE, required=True, label_visibility="collapsed"
    )
    if mode == MODES[0]:
        return _methods_variants(view)
    return _sweep_variants(view)


def _methods_variants(view: View) -> list[Variant]:
    return choose_methods(
        view, state.COMPARE_METHODS, resources.featured("compare"), MAX_VARIANTS, help=METHODS_HELP
    )


def suggested_values(p: dict[str, Any], current: Any, layers: Sequence[str]) -> list[Any]:
    """Values worth sweeping for a parameter: the suggested layers, all choices, else half, current and
    double."""
    if p["type"] == "layer":
        return suggested(layers)
    if p["type"] == "choice":
        return list(p["choices"])
    if p["type"] == "bool":
        return [False, True]
    lo = p.get("min") if p.get("min") is not None else -np.inf
    hi = p.get("max") if p.get("max") is not None else np.inf
    base = current if current else (p["default"] or 1)
    raw = [base / 2, base, base * 2]
    out = []
    for v in raw:
        v = float(np.clip(v, lo, hi))
        v = round(v) if p["type"] == "int" else round(v, 4)
        if v not in out:
            out.append(v)
    return out


def parse_values(p: dict[str, Any], given: str) -> tuple[list[Any], list[str]]:
    """Comma-separated values for a numeric parameter -> (valid values, messages about the others, in
    markdown: the typed text is escaped). Values are read like every parameter value (`sc.Param`), so
    inf, NaN and '1e400' are refused, not turned into an OverflowError."""
    param = sc.Param.from_dict(p)
    good: list[Any] = []
    bad: list[str] = []
    for part in (t.strip() for t in given.split(",")):
        if not part:
            continue
        shown = text.md(part, limit=40)
        try:
            value = clamp.parse(param, part)
        except sc.InvalidParameter:
            bad.append(f"'{shown}' is not a{'n integer' if p['type'] == 'int' else ' finite number'}")
            continue
        if clamp.into_range(param, value) != value:
            bad.append(f"{shown} is outside {p.get('min')}…{p.get('max')}")
            continue
        if value not in good:
            good.append(value)
    return good[:MAX_VARIANTS], bad


def _sweep_variants(view: View) -> list[Variant]:
    infos = [
        m for m in resources.methods(view.model.task) if any(p["name"] != "batch_size" for p in m.params)
    ]
    by_id = {m.id: m for m in infos}
    method_key = state.COMPARE_SWEEP_METHOD
    state.default(method_key, resources.first_featured("explore", list(by_id)), allowed=list(by_id))
    left, right = st.columns(2)
    method_id = left.selectbox("Method", list(by_id), key=method_key, format_func=lambda i: by_id[i].title)
    info = by_id[method_id]
    sweepable = [p for p in info.params if p["name"] != "batch_size"]
    names = [p["name"] for p in sweepable]
    param_key = state.compare_sweep_param(method_id)
    state.default(param_key, names[0], allowed=names)
    name = right.selectbox("Vary", names, key=param_key)
    p = next(q for q in sweepable if q["name"] == name)
    layers = layer_choices(view)
    base = params.values(info, layers, view)
    values_key = state.compare_sweep_values(method_id, name)
    suggestions = suggested_values(p, base[name], layers)
    if p["type"] in ("layer", "choice", "bool"):
        is_layer = p["type"] == "layer"
        options = list(layers) if is_layer else suggestions  # any layer of the tree can be swept
        state.default(values_key, suggestions[:MAX_VARIANTS])
        st.session_state[values_key] = [v for v in st.session_state[values_key] if v in options]
        chosen = st.multiselect(
            "Values",
            options,
            key=values_key,
            max_selections=MAX_VARIANTS,
            format_func=layers.label if is_layer else str,
        )
    else:
        state.default(values_key, ", ".join(str(v) for v in suggestions))
        typed = st.text_input("Values (comma-separated)", key=values_key, help=p.get("help"))
        chosen, problems = parse_values(p, typed or "")
        if problems:  # one warning, however much was pasted
            more = f" and {len(problems) - 5} more" if len(problems) > 5 else ""
            st.warning(f"Skipped: {'; '.join(problems[:5])}{more}.")
    others = ", ".join(f"{k}={text.md(v)}" for k, v in base.items() if k not in (name, "batch_size"))
    if others:
        st.caption(f"Other parameters as set on Explore: {others}.")
    return [Variant(f"{info.title} · {name}={v}", info, {**base, name: v}) for v in chosen]


# --- computing -------------------------------------------------------------------------------------------
def compute(view: View, variants: Sequence[Variant]) -> list[Result | None]:
    """Stored results of the variants; the missing ones computed when asked (or when cheap).

    Without a target (nothing detected, an empty region) only model-free variants are computed; the
    others come back as None.
    """
    missing_target = view.missing_target()
    if missing_target and any(v.info.needs_target for v in variants):
        st.warning(
            f"{md(missing_target, limit=None)} Only model-free methods can be shown.",
            icon=":material/search_off:",
        )
        kept = [v for v in variants if not v.info.needs_target]
        found = iter(compute(view, kept) if kept else [])
        return [None if v.info.needs_target else next(found) for v in variants]
    jobs = [(v.label, v.info, v.params) for v in variants]
    keys = tuple(results.request_key(view, v.info, v.params) for v in variants)
    stored = [results.store().get(k) for k in keys]
    missing = [v for v, r in zip(variants, stored) if r is None]
    if not missing:
        return stored
    texts = []
    for v in missing:
        line = f"- **{md(v.label)}**: {md(results.estimate_text(view, v.info, v.params)[0], limit=None)}"
        slow = results.cost_warning(view, v.info, v.params)
        texts.append(f"{line}  \n  :orange[{slow}]" if slow else line)
    budget = AUTO_RUN_SECONDS / len(missing)
    auto = all(results.is_cheap(view, v.info, v.params, budget) for v in missing)
    box = st.empty()
    with box.container(border=True):
        st.markdown(f"{len(missing)} of {len(variants)} maps still to compute:\n" + "\n".join(texts))
        st.button(
            f"Compute {len(missing)} map{'s' if len(missing) > 1 else ''}",
            key=f"{state.ACTION_PREFIX}compare.run",
            type="primary",
            icon=":material/play_arrow:",
            on_click=results.request,
            args=(state.COMPARE_PENDING, keys),
        )
    if results.should_run(state.COMPARE_PENDING, keys, auto):
        st.session_state[state.COMPARE_PENDING] = keys
        done = results.run_with_progress(view, jobs, state.COMPARE_PENDING)
        if all(r is not None for r in done):
            box.empty()
        return done
    return stored


# --- showing ---------------------------------------------------------------------------------------------
def scales(done: Sequence[Result], shown: Display) -> list[float | None]:
    """Per-map scales: None (each its own range) or one shared scale for all."""
    if not shown.shared:
        return [None] * len(done)
    common = max((viz.map_scale(r.map, shown.sign_for(r.method), shown.clip) for r in done), default=0.0)
    return [common] * len(done)


def tiles(view: View, done: Sequence[Result], shown: Display, overlay: bool) -> list[np.ndarray]:
    out = []
    box = getattr(view.target, "box", None)
    for result, scale in zip(done, scales(done, shown)):
        if overlay:
            picture = display.overlay(view, result, shown, scale)
            if box is not None:  # the explained detection (or person), outlined on every tile
                picture = viz.draw_boxes(picture, [box], colors=[(255, 255, 255)], thickness=2)
            out.append(picture)
        else:
            out.append(viz.apply_colormap(display.map01(result, shown, scale), shown.cmap))
    return out


def grid(view: View, labels: Sequence[str], done: Sequence[Result], shown: Display, overlay: bool) -> None:
    columns = st.columns(max(3, min(4, len(done))))
    for i, (label, result, picture) in enumerate(zip(labels, done, tiles(view, done, shown, overlay))):
        with columns[i % len(columns)]:
            st.image(picture, caption=label, width="stretch")
            source = "cache" if result.engine_cached else results.format_seconds(result.seconds)
            st.caption(f"{source} · {result.forward_passes}F/{result.backward_passes}B passes")


def agreement_section(labels: Sequence[str], done: Sequence[Result]) -> sc.metrics.Agreement | None:
    """Spearman and SSIM between every pair of maps, as two labelled matrices."""
    if len(done) < 2:
        st.caption("Choose at least two maps to see how much they agree.")
        return None
    try:
        found = sc.metrics.agreement({label: r.map for label, r in zip(labels, done)})
    except sc.SaliencyError as exc:
        st.warning(f"Agreement cannot be computed: {md(exc, limit=None)}")
        return None
    left, right = st.columns(2)
    short = [_short(label) for label in found.names]
    left.plotly_chart(
        viz.matrix_figure(found.spearman, short, "Spearman rank correlation", height=360),
        config={"displaylogo": False},
    )
    right.plotly_chart(
        viz.matrix_figure(found.ssim, short, "SSIM", height=360),
        config={"displaylogo": False},
    )
    st.caption(
        "Both compare the maps' magnitudes. Spearman: do the maps rank pixels alike (1 = same order)? "
        "SSIM: do they look alike, structure by structure (1 = identical)?"
    )
    return found


def _short(label: str, limit: int = 22) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def difference_section(view: View, labels: Sequence[str], done: Sequence[Result], shown: Display) -> None:
    """Two maps (as displayed) and their difference on a diverging scale."""
    if len(done) < 2:
        return
    index = list(range(len(done)))
    key_a, key_b = state.COMPARE_DIFF_A, state.COMPARE_DIFF_B
    state.default(key_a, 0, allowed=index)
    state.default(key_b, 1, allowed=index)
    pick_a, pick_b = st.columns(2)
    a = pick_a.selectbox("Map A", index, key=key_a, format_func=lambda i: labels[i])
    b = pick_b.selectbox("Map B", index, key=key_b, format_func=lambda i: labels[i])
    all_scales = scales(done, shown)
    map_a = display.map01(done[a], shown, all_scales[a])
    map_b = display.map01(done[b], shown, all_scales[b])
    diff = viz.difference(map_a, map_b)
    cols = st.columns([1, 1, 1.3])
    cols[0].image(viz.apply_colormap(map_a, shown.cmap), caption=f"A: {labels[a]}", width="stretch")
    cols[1].image(viz.apply_colormap(map_b, shown.cmap), caption=f"B: {labels[b]}", width="stretch")
    with cols[2]:
        figure = viz.heatmap_figure(diff, diff, "coolwarm", height=260, zrange=(-1.0, 1.0))
        st.plotly_chart(figure, config={"displaylogo": False})
    st.caption(
        f"A − B of the maps as displayed: red where A is stronger, blue where B is. "
        f"Mean absolute difference {float(np.abs(diff).mean()):.3f}."
    )


def exports(
    view: View,
    labels: Sequence[str],
    done: Sequence[Result],
    shown: Display,
    overlay: bool,
    agreement: sc.metrics.Agreement | None,
) -> None:
    metrics = {"agreement": agreement.as_dict()} if agreement is not None else {}
    content = export.card(view, done, shown, labels, metrics=metrics, page="compare")
    pictures = tiles(view, done, shown, overlay)
    export.downloads(
        png=lambda: viz.png_bytes(export.grid_picture([view.picture, *pictures], ["Input", *labels])),
        npz=lambda: export.maps_npz(view, done, shown, labels, content=content),
        content=content,
        stem=f"{export.file_stem(view)}_compare",
        key="compare",
        label="grid",
    )
