"""Choosing what Compare shows: several methods, one method over a parameter's values, or one method for
several targets (the top-k classes, several boxes or persons)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import streamlit as st

import saliency_core as sc
from ui import clamp, params, resources, state, tasks, text
from ui.layers import choices as layer_choices
from ui.layers import suggested
from ui.view import View
from ui.widgets.variants import Variant, choose_methods

MODES = ["Methods", "One method, several settings", "One method, several targets"]
MAX_VARIANTS = 8
MAX_TARGETS = 8
METHODS_HELP = "Each uses the parameters last set for it on the Explore page (defaults otherwise)."


# --- choosing variants ---------------------------------------------------------------------------------------
def choose_variants(view: View) -> list[Variant]:
    """The mode switch and its pickers; returns the variants to show."""
    state.default(state.COMPARE_MODE, MODES[0], allowed=MODES)
    mode = st.segmented_control(
        "Compare", MODES, key=state.COMPARE_MODE, required=True, label_visibility="collapsed"
    )
    if mode == MODES[0]:
        return _methods_variants(view)
    if mode == MODES[1]:
        return _sweep_variants(view)
    return _targets_variants(view)


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
    infos = [m for m in resources.methods(view.model) if any(p["name"] != "batch_size" for p in m.params)]
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


def _targets_variants(view: View) -> list[Variant]:
    """One method for each of the first k predictions: how the map changes with what is explained."""
    infos = [m for m in resources.methods(view.model) if m.needs_target]
    if not infos:
        st.info("No method for this task explains a chosen target.")
        return []
    by_id = {m.id: m for m in infos}
    task = tasks.get(view.task)
    n = len(view.predictions)
    if n < 2:
        st.info(
            f"The model lists {'one prediction' if n else 'no prediction'} here, so there are no targets to set "
            "side by side. Lower the score threshold in the sidebar or pick another image."
        )
        return []
    state.default(
        state.COMPARE_TARGETS_METHOD, resources.first_featured("explore", list(by_id)), allowed=list(by_id)
    )
    left, right = st.columns(2)
    method_id = left.selectbox(
        "Method", list(by_id), key=state.COMPARE_TARGETS_METHOD, format_func=lambda i: by_id[i].title
    )
    most = min(MAX_TARGETS, n)
    options = list(range(2, most + 1))
    state.default(state.COMPARE_TARGETS_K, min(4, most), allowed=options)
    k = right.select_slider(
        f"How many targets (the model's top {most})",
        options,
        key=state.COMPARE_TARGETS_K,
        help="The first k predictions listed in the sidebar, best first.",
    )
    info = by_id[method_id]
    values = params.values(info, layer_choices(view), view)
    st.caption(
        f"{text.md(info.title)} with the parameters set on Explore, for each of the first {k} "
        f"{text.md(task.picker_title.lower())} entries, as listed (the sidebar's refinements, such as a "
        "keypoint or a rectangle, apply to the sidebar's target only)."
    )
    return [target_variant(view, info, values, i) for i in range(int(k))]


def target_variant(view: View, info: sc.MethodInfo, values: dict[str, Any], index: int) -> Variant:
    """The variant explaining prediction `index` of the view with `info`."""
    target_view = replace(view, target_index=index, chosen=None, region=None, problem="")
    label = tasks.get(view.task).target_label(view.predictions[index], index)
    return Variant(label, info, values, view=target_view)
