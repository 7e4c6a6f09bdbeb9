"""Share links: the Explore view of a bundled sample as URL query parameters, and applying such a link.

`?sample=scene_00&model=shapes_demo&target=0&method=occlusion&p.patch=16&cmap=jet` reproduces the view:
sample, model (and `weights=random` when used), target rank (with the task's fields, ui/tasks: a detection `threshold`, a pose `keypoint`
name or a segmentation `region=x0,y0,x1,y1` where used), method, its parameters (`p.<name>`) and the
display settings. An uploaded image is kept in the server's bounded upload store (ui/uploads.py) and linked
as `upload=<sha256 hex>` instead of `sample`: the link works on this server while the store keeps the image.
Camera pictures and uploaded weights are not stored anywhere, so their views cannot be shared.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import streamlit as st

import saliency_core as sc
from saliency_core import viz
from ui import clamp, display, images, params, resources, state, tasks, text, uploads
from ui.display import Display
from ui.sidebar import custom_model
from ui.view import View

_DISPLAY_KEYS = {
    "cmap": state.CMAP,
    "alpha": state.ALPHA,
    "sign": state.SIGN,
    "clip": state.CLIP,
    "style": state.STYLE,
}
_CHOICES = {"cmap": list(viz.COLORMAPS), "sign": display.SIGN_CHOICES, "style": display.STYLE_CHOICES}


def query(view: View, info: sc.MethodInfo, values: dict[str, Any], shown: Display) -> dict[str, str] | None:
    """The query parameters of this view, or None when it cannot be shared (a camera picture, uploaded
    weights). An uploaded image is put in the upload store (again the most recent there) as it is linked."""
    if view.weights.startswith("file"):
        return None
    if view.image.source == "sample" and view.image.sample_id:
        image = {"sample": view.image.sample_id}
    elif view.image.source == "upload":
        image = {"upload": uploads.store().put(view.image.data)}
    else:
        return None
    out = {
        **image,
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


MAX_TARGET = 100_000  # a rank among the predictions: no model lists more (the largest heads have ~22k)
MAX_SHOWN = 8  # problems named in the notice; the rest are counted
_TARGET = sc.Param("target", "int", 0, "", min=0, max=MAX_TARGET)
_RANGES = {"alpha": display.ALPHA_RANGE, "clip": display.CLIP_RANGE}


def apply_from_url() -> list[str]:
    """Apply the link's choices once per session (before the sidebar draws); return, as plain text, what
    could not be used as given (`notice` makes the message). Every value is checked and fitted to its
    widget, so no link can break a page."""
    if st.session_state.get(state.SHARE_APPLIED):
        return []
    st.session_state[state.SHARE_APPLIED] = True
    link = {str(k): str(st.query_params.get(k) or "") for k in st.query_params}
    if link.get("sample"):
        if not images.use_sample(link["sample"]):
            return [f"sample '{link['sample']}'"]
        st.session_state[state.SOURCE] = "Samples"
    elif link.get("upload"):
        if not _apply_upload(link["upload"]):
            return [f"upload '{link['upload']}'"]  # why: the image error the sidebar shows
    else:
        return []
    problems: list[str] = []
    for apply in (_apply_model, _apply_target, _apply_target_details, _apply_method, _apply_display):
        problems += apply(link)
    return problems


def request_view(values: dict[str, Any]) -> None:
    """Ask for a view (the session keys a link sets: image, source, model, target, method) to be set when
    the next run starts, before the sidebar draws: a page that opens another view mid-run (Benchmark's
    rows) cannot set widget keys the sidebar has already drawn in this run."""
    st.session_state[state.VIEW_REQUEST] = dict(values)


def apply_requested() -> None:
    """Set the view `request_view` asked for (once)."""
    for key, value in (st.session_state.pop(state.VIEW_REQUEST, None) or {}).items():
        st.session_state[key] = value


def _apply_upload(digest: str) -> bool:
    """Open the uploaded image a link names, while the upload store keeps it; else say why (the sidebar
    shows the image error over the first sample, which the session then starts on)."""
    data = uploads.store().get(digest) if uploads.valid_digest(digest) else None
    if data is not None and images.accept(data, f"shared upload {digest[:8]}", "upload"):
        st.session_state[state.SOURCE] = "Upload"
        return True
    samples = resources.samples()
    if images.current() is None and samples:
        images.use_sample(samples[0].id)  # first, so that the message below stays
    if not uploads.valid_digest(digest):
        st.session_state[state.IMAGE_ERROR] = (
            f"This link's upload '{text.md(digest, limit=80)}' is not an image reference (64 hex characters); "
            "the link may have been cut. Upload the image again, or pick a sample."
        )
    elif data is None:
        st.session_state[state.IMAGE_ERROR] = (
            "The image this link shows is no longer on this server (uploads are kept for a while, the least "
            "recently used going first, and not across servers). Upload it again to see the view."
        )
    return False


def link_note(view: View) -> str:
    """What the share link of `view` reproduces and for how long, or why there is none."""
    if view.weights.startswith("file"):
        return "Views with uploaded weights cannot be shared: the weights are not stored anywhere."
    if view.image.source == "upload":
        return (
            "Opening this link reproduces the view on this server while it keeps the uploaded image (the "
            "least recently used uploads are dropped first)."
        )
    if view.image.source == "sample":
        return "Opening this link reproduces the view."
    return "Views of camera pictures cannot be shared: the picture is not stored anywhere."


def notice(problems: list[str]) -> str:
    """The one warning about a link's unusable parts, each escaped (a link's text is anyone's)."""
    shown = ", ".join(text.md(p, limit=80) for p in problems[:MAX_SHOWN])
    more = f" and {len(problems) - MAX_SHOWN} more" if len(problems) > MAX_SHOWN else ""
    return f"Parts of this link could not be used as given: {shown}{more}."


def _apply_model(link: dict[str, str]) -> list[str]:
    model_id = link.get("model")
    if not model_id:
        return []
    if ":" in model_id:
        return _apply_custom_model(link)
    if resources.model_info(model_id) is None:
        return [f"model '{model_id}'"]
    st.session_state[state.MODEL] = model_id
    weights = "random" if link.get("weights") == "random" else "default"
    st.session_state.setdefault(state.WEIGHTS, {})[model_id] = weights
    return []


def _apply_target(link: dict[str, str]) -> list[str]:
    if not link.get("target"):
        return []
    try:
        index, note = clamp.from_link(_TARGET, link["target"])
    except sc.InvalidParameter:
        return [f"target '{link['target']}'"]
    st.session_state[state.TARGET] = index
    st.session_state[state.KEEP_TARGET] = True
    return [note] if note else []


def _apply_method(link: dict[str, str]) -> list[str]:
    """The method and its `p.<name>` parameters, each read by the method's own schema and fitted to its
    range; a layer name is kept as given (the model's layers are checked when the picker draws)."""
    method = resources.method(link.get("method") or "")
    if method is None:
        return [f"method '{link['method']}'"] if link.get("method") else []
    st.session_state[state.METHOD] = method.id
    st.session_state[state.FAMILY] = method.family
    schema = {p["name"]: sc.Param.from_dict(p) for p in method.params}
    problems = []
    for key, given in link.items():
        if not key.startswith("p."):
            continue
        param = schema.get(key[2:])
        try:
            if param is None:
                raise sc.InvalidParameter(key)
            value, note = clamp.from_link(param, given)
        except sc.InvalidParameter:
            problems.append(f"parameter {key[2:]}={given}")
            continue
        st.session_state[params.key(method.id, param.name)] = value
        problems += [f"parameter {note}"] if note else []
    return problems


def _apply_display(link: dict[str, str]) -> list[str]:
    problems = []
    for name, key in _DISPLAY_KEYS.items():
        given = link.get(name)
        if given is None:
            continue
        if name in _RANGES:
            lo, hi, _ = _RANGES[name]
            try:
                value, note = clamp.from_link(sc.Param(name, "float", 0.0, "", min=lo, max=hi), given)
            except sc.InvalidParameter:
                problems.append(f"{name}={given}")
                continue
            st.session_state[key] = value
            problems += [note] if note else []
        elif given in _CHOICES[name]:
            st.session_state[key] = given
        else:
            problems.append(f"{name}={given}")
    return problems


def _apply_custom_model(link: dict[str, str]) -> list[str]:
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
        if model_id.partition(":")[0] not in custom_model.SOURCES:
            return None  # only the sources a link may name are looked up (never a program's path)
        try:
            return sc.model_info(model_id).task
        except sc.SaliencyError:
            return None
    info = resources.model_info(model_id)
    return info.task if info is not None else None


def _apply_target_details(link: dict[str, str]) -> list[str]:
    """The task's fields of a link (a detection threshold, a keypoint name, a segmentation rectangle)."""
    task = _task_of(str(link.get("model") or st.session_state.get(state.MODEL) or ""))
    return tasks.get(task).apply_share(link) if task is not None else []
