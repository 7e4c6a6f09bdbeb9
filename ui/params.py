"""Method picker grouped by family, and parameter widgets rendered from a method's schema.

Parameter values live under `param.<method>.<name>`, so each method keeps its own settings, and the Compare
and Evaluate pages can read what the user set on Explore (`values`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

import saliency_core as sc
from ui import resources, state

ADVANCED = ("seed", "batch_size")  # rarely changed: kept in an expander
_SLIDER_MAX_STEPS = 1100  # wider ranges get a number box (a slider that long is unusable)


def key(method_id: str, name: str) -> str:
    """The widget key of a method's parameter (see ui.state.param)."""
    return state.param(method_id, name)


def _current_view() -> Any:
    return st.session_state.get(state.VIEW)


def task_defaults(info: sc.MethodInfo, view: Any = None) -> dict[str, Any]:
    """Defaults that replace the schema's for the view's task and input size.

    The schema's defaults suit a 224-pixel classifier input; a task whose inputs keep the image's size
    (detectors see up to 640 pixels) gets the method's size-dependent defaults (`MethodSpec.size_defaults`).
    """
    view = view if view is not None else _current_view()
    if view is None:
        return {}
    return sc.method_defaults(info.id, view.task, max(int(v) for v in view.picture.shape[:2]))


def defaults(info: sc.MethodInfo, layers: Sequence[str], view: Any = None) -> dict[str, Any]:
    """The schema's defaults for the current view's task and input size (`task_defaults`), the layer
    defaulting to the model's suggested one. `view` defaults to the sidebar's current view."""
    out = {}
    for p in info.params:
        value = p["default"]
        if p["type"] == "layer":
            value = layers[0] if layers else None
        out[p["name"]] = value
    out.update(task_defaults(info, view))
    return out


def is_valid(p: dict[str, Any], value: Any, layers: Sequence[str]) -> bool:
    kind = p["type"]
    if kind == "layer":
        return value in layers
    if kind == "choice":
        return value in p["choices"]
    if kind == "bool":
        return isinstance(value, bool)
    if kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        lo, hi = p.get("min"), p.get("max")
        return (lo is None or value >= lo) and (hi is None or value <= hi)
    return True


def _resolve(info: sc.MethodInfo, layers: Sequence[str], view: Any = None) -> tuple[dict[str, Any], set[str]]:
    """(values, names whose value is the default): a value the user (or a link) set is kept while valid;
    one still at the default it was given follows the defaults of the current task and input."""
    out = defaults(info, layers, view)
    given = st.session_state.get(state.PARAMS_DEFAULTED, {})
    from_default = set(out)
    for p in info.params:
        k = key(info.id, p["name"])
        value = st.session_state.get(k)
        if value is None or not is_valid(p, value, layers):
            continue
        if k in given and given[k] == value:
            continue  # never changed from a default: take today's default
        out[p["name"]] = value
        from_default.discard(p["name"])
    return out, from_default


def values(info: sc.MethodInfo, layers: Sequence[str], view: Any = None) -> dict[str, Any]:
    """The method's parameters as the user last set them (defaults where never set or no longer valid).

    `view` (default: the sidebar's current view) picks task- and size-dependent defaults.
    """
    return _resolve(info, layers, view)[0]


def set_values(method_id: str, params: dict[str, Any]) -> None:
    """Preset parameter widgets (share links)."""
    for name, value in params.items():
        st.session_state[key(method_id, name)] = value


# --- method picker ---------------------------------------------------------------------------------------
def _set_family_method(methods_by_family: dict[str, list[str]]) -> None:
    family = st.session_state.get(state.FAMILY)
    if family in methods_by_family and st.session_state.get(state.METHOD) not in methods_by_family[family]:
        st.session_state[state.METHOD] = methods_by_family[family][0]


def method_picker(
    model: sc.LoadedModel,
    preferred: str | None = None,
    family_area: Any = None,
    method_area: Any = None,
) -> sc.MethodInfo:
    """Family (pills) then method (select box), optionally drawn in two containers; returns the method."""
    infos = resources.methods(model)
    by_id = {m.id: m for m in infos}
    by_family: dict[str, list[str]] = {}
    for m in infos:
        by_family.setdefault(m.family, []).append(m.id)
    first = preferred if preferred in by_id else resources.first_featured("explore", list(by_id))
    state.default(state.METHOD, first, allowed=list(by_id))
    st.session_state[state.FAMILY] = by_id[st.session_state[state.METHOD]].family
    family = (family_area or st).pills(
        "Method family",
        list(by_family),
        key=state.FAMILY,
        format_func=resources.family_title,
        required=True,
        wrap=True,
        on_change=_set_family_method,
        args=(by_family,),
    )
    method_id = (method_area or st).selectbox(
        "Method",
        by_family[family or infos[0].family],
        key=state.METHOD,
        format_func=lambda i: by_id[i].title,
    )
    return by_id[method_id]


# --- parameter form --------------------------------------------------------------------------------------
def form(info: sc.MethodInfo, layers: Sequence[str], view: Any = None) -> dict[str, Any]:
    """Widgets for every parameter (help text from the schema); returns their values."""
    current, from_default = _resolve(info, layers, view)
    given = st.session_state.setdefault(state.PARAMS_DEFAULTED, {})
    for p in info.params:
        k = key(info.id, p["name"])
        if p["name"] in from_default:
            given[k] = current[p["name"]]
        else:
            given.pop(k, None)
    basic = [p for p in info.params if p["name"] not in ADVANCED]
    advanced = [p for p in info.params if p["name"] in ADVANCED]
    out: dict[str, Any] = {}
    for p in basic:
        out[p["name"]] = widget(info.id, p, current[p["name"]], layers)
    if advanced:
        with st.expander("Advanced", icon=":material/tune:"):
            for p in advanced:
                out[p["name"]] = widget(info.id, p, current[p["name"]], layers)
    if not info.params:
        st.caption("This method has no parameters.")
    return out


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _layer_widget(label: str, k: str, help_text: str | None, layers: Sequence[str]) -> Any:
    """A searchable picker over the whole module tree (type to filter), the suggested layers first."""
    fmt = getattr(layers, "label", str)
    count = len(layers)
    extra = f" All {count} layers are listed (type to search), with their output shapes; ★ marks suggestions."
    chosen = st.selectbox(label, list(layers), key=k, help=(help_text or "") + extra, format_func=fmt)
    note = getattr(layers, "notes", {}).get(chosen)
    if note:
        st.warning(
            f"This layer's output cannot be read as a spatial grid ({note}), so CAM methods cannot use it. "
            "Pick a layer with a C×h×w output.",
            icon=":material/grid_off:",
        )
    return chosen


def widget(method_id: str, p: dict[str, Any], value: Any, layers: Sequence[str]) -> Any:
    """One parameter's widget, its value taken from and kept in the session state."""
    k = key(method_id, p["name"])
    label, help_text, kind = _label(p["name"]), p.get("help") or None, p["type"]
    if kind == "int":
        value = int(value)
    elif kind == "float":
        value = float(value)
    st.session_state[k] = value  # a valid value (defaults replace anything stale)
    if kind == "layer":
        return _layer_widget(label, k, help_text, layers)
    if kind == "choice":
        choices = list(p["choices"])
        if len(choices) <= 3 and all(len(str(c)) <= 12 for c in choices):
            return st.segmented_control(label, choices, key=k, help=help_text, required=True)
        return st.selectbox(label, choices, key=k, help=help_text)
    if kind == "bool":
        return st.toggle(label, key=k, help=help_text)
    lo, hi, step = p.get("min"), p.get("max"), p.get("step")
    if kind == "int":
        step = int(step or 1)
        lo = int(lo) if lo is not None else None
        hi = int(hi) if hi is not None else None
    else:
        step = float(step) if step else (float(hi - lo) / 100 if lo is not None and hi is not None else 0.01)
        lo = float(lo) if lo is not None else None
        hi = float(hi) if hi is not None else None
    slider = lo is not None and hi is not None and (hi - lo) / step <= _SLIDER_MAX_STEPS
    if slider and p["name"] not in ADVANCED:
        return st.slider(label, lo, hi, step=step, key=k, help=help_text)
    return st.number_input(label, min_value=lo, max_value=hi, step=step, key=k, help=help_text)
