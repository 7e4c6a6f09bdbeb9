"""Share links: the Explore view of a bundled sample as URL query parameters, and applying such a link.

`?sample=scene_00&model=shapes_demo&target=0&method=occlusion&p.patch=16&cmap=jet` reproduces the view:
sample, model (and `weights=random` when used), target rank (with a detection `threshold`, a pose `keypoint`
name or a segmentation `region=x0,y0,x1,y1` where used), method, its parameters (`p.<name>`) and the
display settings. Uploaded and camera images, and uploaded weights, are not stored anywhere, so their views
cannot be shared.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import streamlit as st

import saliency_core as sc
from saliency_core import viz
from ui import display, images, params, resources, state
from ui.display import Display
from ui.view import View

_DISPLAY_KEYS = {"cmap": state.CMAP, "alpha": state.ALPHA, "sign": state.SIGN, "clip": state.CLIP}


def query(view: View, info: sc.MethodInfo, values: dict[str, Any], shown: Display) -> dict[str, str] | None:
    """The query parameters of this view, or None when the image is not a bundled sample."""
    if view.image.source != "sample" or not view.image.sample_id or view.weights.startswith("file"):
        return None
    out = {
        "sample": view.image.sample_id,
        "model": view.info.id,
        "target": str(view.target_index),
        "method": info.id,
    }
    if view.weights == "random":
        out["weights"] = "random"
    threshold = st.session_state.get(state.THRESHOLD)
    if view.task in ("detection", "keypoints") and threshold is not None and threshold != 0.5:
        out["threshold"] = str(threshold)
    keypoint = getattr(view.target, "keypoint_name", None)
    if view.task == "keypoints" and keypoint:
        out["keypoint"] = keypoint
    if view.task == "segmentation" and view.region is not None:
        out["region"] = ",".join(str(v) for v in view.region)
    for name, value in values.items():
        if name != "batch_size":
            out[f"p.{name}"] = str(value)
    for name in _DISPLAY_KEYS:
        value = getattr(shown, name)
        if value != getattr(display.DEFAULTS, name):
            out[name] = str(value)
    return out


def sync(view: View, info: sc.MethodInfo, values: dict[str, Any], shown: Display) -> str | None:
    """Keep the address bar on the share link of the current view; return the link (None if not shareable)."""
    wanted = query(view, info, values, shown)
    if wanted is None:
        if st.query_params:
            st.query_params.clear()
        return None
    if dict(st.query_params) != wanted:
        st.query_params.from_dict(wanted)
    base = _base_url()
    return f"{base}?{urlencode(wanted)}"


def _base_url() -> str:
    try:
        url = st.context.url or ""
    except Exception:  # no browser context (tests)
        url = ""
    return url.split("?", 1)[0] or "http://localhost:8501/"


def _parse(p: dict[str, Any], text: str) -> Any:
    kind = p["type"]
    if kind == "int":
        return int(float(text))
    if kind == "float":
        return float(text)
    if kind == "bool":
        return text.strip().lower() in ("1", "true", "yes", "on")
    if kind == "choice":
        return next((c for c in p["choices"] if str(c) == text), text)
    return text


def apply_from_url() -> list[str]:
    """Apply the link's choices once per session (before the sidebar draws); return what could not be used."""
    if st.session_state.get(state.SHARE_APPLIED):
        return []
    st.session_state[state.SHARE_APPLIED] = True
    link = {k: st.query_params.get(k) for k in st.query_params}
    if not link.get("sample"):
        return []
    problems: list[str] = []
    if not images.use_sample(str(link["sample"])):
        return [f"sample '{link['sample']}'"]
    st.session_state[state.SOURCE] = "Samples"
    model_id = link.get("model")
    if model_id:
        if resources.model_info(model_id) is None:
            problems.append(f"model '{model_id}'")
        else:
            st.session_state[state.MODEL] = model_id
            weights = "random" if link.get("weights") == "random" else "default"
            st.session_state.setdefault(state.WEIGHTS, {})[model_id] = weights
    if link.get("target"):
        try:
            st.session_state[state.TARGET] = int(link["target"])
            st.session_state[state.KEEP_TARGET] = True
        except ValueError:
            problems.append(f"target '{link['target']}'")
    problems += _apply_target_details(link)
    method = resources.method(link.get("method") or "")
    if link.get("method") and method is None:
        problems.append(f"method '{link['method']}'")
    if method is not None:
        st.session_state[state.METHOD] = method.id
        st.session_state[state.FAMILY] = method.family
        schema = {p["name"]: p for p in method.params}
        for key, text in link.items():
            if not key.startswith("p."):
                continue
            p = schema.get(key[2:])
            try:
                value = _parse(p, str(text)) if p is not None else None
            except ValueError:
                value = None
            if value is None or (p["type"] != "layer" and not params.is_valid(p, value, [])):
                problems.append(f"parameter {key[2:]}={text}")
                continue
            st.session_state[params.key(method.id, p["name"])] = value
    for name, key in _DISPLAY_KEYS.items():
        text = link.get(name)
        if text is None:
            continue
        if (name == "cmap" and text in viz.COLORMAPS) or (name == "sign" and text in display.SIGN_CHOICES):
            st.session_state[key] = text
        elif name in ("alpha", "clip"):
            try:
                st.session_state[key] = float(text)
            except ValueError:
                problems.append(f"{name}={text}")
    return problems


def _apply_target_details(link: dict[str, Any]) -> list[str]:
    """A detection threshold, a keypoint name and a segmentation rectangle from a link."""
    problems = []
    if link.get("threshold"):
        try:
            value = round(float(link["threshold"]) / 0.05) * 0.05
            if not 0.05 <= value <= 0.95:
                raise ValueError
            st.session_state[state.THRESHOLD] = round(value, 2)
        except ValueError:
            problems.append(f"threshold={link['threshold']}")
    if link.get("keypoint"):
        st.session_state[state.KEYPOINT] = str(link["keypoint"])  # checked against the names when drawn
        st.session_state[state.KEEP_TARGET] = True
    if link.get("region"):
        try:
            x0, y0, x1, y1 = (int(v) for v in str(link["region"]).split(","))
            if not (0 <= x0 < x1 and 0 <= y0 < y1):
                raise ValueError
        except ValueError:
            problems.append(f"region={link['region']}")
        else:
            st.session_state[state.REGION_ON] = True
            st.session_state[state.REGION_X] = (x0, x1)
            st.session_state[state.REGION_Y] = (y0, y1)
            st.session_state[state.KEEP_TARGET] = True
    return problems
