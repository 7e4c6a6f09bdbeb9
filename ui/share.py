"""Share links: the Explore view of a bundled sample as URL query parameters, and applying such a link.

`?sample=scene_00&model=shapes_demo&target=0&method=occlusion&p.patch=16&cmap=jet` reproduces the view:
sample, model (and `weights=random` when used), target rank (with the task's fields, ui/tasks: a detection `threshold`, a pose `keypoint`
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
from ui import display, images, params, resources, state, tasks
from ui.display import Display
from ui.sidebar import custom_model
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
    if view.weights.startswith("custom:"):
        custom = custom_model.current()
        if custom is None or custom.upload is not None or custom.categories:
            return None  # uploaded files are not stored anywhere
        out["weights"] = "random" if custom.weights == "random" else "default"
        if custom.num_classes:
            out["classes"] = str(custom.num_classes)
    out.update(tasks.get(view.task).share_fields(view))  # a threshold, a keypoint, a rectangle
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
    if model_id and ":" in str(model_id):
        problems += _apply_custom_model(link)
    elif model_id:
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


def _apply_custom_model(link: dict[str, Any]) -> list[str]:
    """'timm:resnet18' or 'torchvision:<name>' with its weights and number of classes, as "your model"."""
    source, _, architecture = str(link["model"]).partition(":")
    if source not in custom_model.SOURCES or architecture not in resources.architectures(source):
        return [f"model '{link['model']}'"]
    try:
        classes = int(link["classes"]) if link.get("classes") else None
        if classes is not None and not 0 < classes <= 100_000:
            raise ValueError
    except ValueError:
        return [f"classes={link['classes']}"]
    weights = "random" if link.get("weights") == "random" else "default"
    st.session_state[state.MODEL_SOURCE] = "Your model"
    st.session_state[state.CUSTOM_SOURCE] = source
    st.session_state[state.custom_architecture(source)] = architecture
    st.session_state[state.CUSTOM_CLASSES] = classes or 0
    st.session_state[state.CUSTOM_WEIGHTS] = "Random init" if weights == "random" else "Pretrained"
    st.session_state[state.CUSTOM_MODEL] = custom_model.CustomChoice(source, architecture, weights, classes)
    return []


def _task_of(model_id: str) -> str | None:
    if ":" in model_id:
        try:
            return sc.model_info(model_id).task
        except sc.SaliencyError:
            return None
    info = resources.model_info(model_id)
    return info.task if info is not None else None


def _apply_target_details(link: dict[str, Any]) -> list[str]:
    """The task's fields of a link (a detection threshold, a keypoint name, a segmentation rectangle)."""
    task = _task_of(str(link.get("model") or st.session_state.get(state.MODEL) or ""))
    return tasks.get(task).apply_share(link) if task is not None else []
