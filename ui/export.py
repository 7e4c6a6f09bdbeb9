"""Exports: the view or a grid as PNG, raw maps as .npz, and a JSON card that says how each map was made.

The builders are plain functions (tested without a browser); `downloads` draws the buttons. The card has a
`metrics` field that pages with evaluations (e.g. Evaluate) fill through `card(..., metrics=...)`.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import streamlit as st

from saliency_core import viz
from ui import display as display_mod
from ui import resources, state
from ui.display import Display
from ui.results import Result
from ui.view import View

CARD_SCHEMA = "saliency-dashboard/card-1"


def file_stem(view: View) -> str:
    """A file-name stem naming the image: the sample id, or the source and a digest prefix."""
    base = view.image.sample_id or f"{view.image.source}-{view.image.digest[:10]}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{base}_{view.info.id}")


def _json_value(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def map_entry(result: Result, display: Display, label: str | None = None) -> dict[str, Any]:
    """How one map was made, for the card."""
    return {
        "label": label or result.title,
        "method": result.method,
        "title": result.title,
        "family": result.family,
        "params": {k: _json_value(v) for k, v in result.params.items()},
        "seed": _json_value(result.seed),
        "target": {"index": result.target_index, "label": result.target_label},
        "timings": {
            "seconds": round(result.seconds, 4),
            "compute_seconds": round(result.compute_seconds, 4),
            "from_cache": result.engine_cached,
        },
        "passes": {"forward": result.forward_passes, "backward": result.backward_passes},
        "device": result.device,
        "mode": result.mode or None,  # e.g. exact or adaptive (approximate) occlusion
        "notes": list(result.notes),
        "map": {
            "shape": list(result.map.shape),
            "raw_shape": list(result.raw_shape),
            "min": float(result.map.min()),
            "max": float(result.map.max()),
            "display_sign": display.sign_for(result.method),
        },
    }


def _weights_file(view: View) -> str | None:
    if view.weights == "default":
        return view.info.weights_path
    upload = st.session_state.get(state.WEIGHTS_FILES, {}).get(view.info.id)
    if view.weights.startswith("file") and upload is not None:
        return f"uploaded {upload.name} (sha256 {upload.sha256})"
    return None


def _target_details(view: View, target: Any) -> dict[str, Any]:
    """Where the target is: a detection's box and class, a keypoint, a segmentation rectangle."""
    out: dict[str, Any] = {}
    box = getattr(target, "box", None) if target is not None else None
    if box is not None:
        out["box"] = [round(float(v), 2) for v in box]
    if target is not None and getattr(target, "category", None) is not None:
        out["category"] = int(target.category)
    if target is not None and getattr(target, "keypoint_name", None):
        out["keypoint"] = target.keypoint_name
        location = getattr(target, "location", None)
        out["keypoint_location"] = [round(float(v), 2) for v in location] if location else None
    if view.region is not None:
        out["region"] = list(view.region)
    if view.threshold is not None:
        out["threshold"] = view.threshold
    return out


def card(
    view: View,
    results: Sequence[Result],
    display: Display,
    labels: Sequence[str] | None = None,
    metrics: dict[str, Any] | None = None,
    page: str = "explore",
) -> dict[str, Any]:
    """The JSON card of one view and its maps: image digest, model, target, methods, versions, timings."""
    labels = list(labels) if labels is not None else [r.title for r in results]
    entries = [map_entry(r, display, lab) for r, lab in zip(results, labels)]
    target = view.target
    first = entries[0] if entries else None
    return {
        "schema": CARD_SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "page": page,
        "image": {
            "sha256": view.image.digest,
            "name": view.image.name,
            "source": view.image.source,
            "sample_id": view.image.sample_id,
            "size": [view.image.width, view.image.height],
            "input_size": list(view.picture.shape[:2]),
        },
        "model": {
            "id": view.info.id,
            "title": view.info.title,
            "task": view.info.task,
            "weights": view.weights,
            "weights_file": _weights_file(view),
            # Where the model came from: the catalogue, a plugin, timm or torchvision, with the weights
            # file's and class-names file's hashes.
            "source": {k: _json_value(v) for k, v in view.model.source_info().items()},
        },
        "target": {
            "index": view.target_index,
            "label": view.target_label,
            "score": _json_value(getattr(target, "score", None)),
            "class_index": _json_value(getattr(target, "index", None)),
            **_target_details(view, target),
        },
        "method": (
            {"id": first["method"], "title": first["title"], "params": first["params"]}
            if len(entries) == 1
            else [{"id": e["method"], "label": e["label"], "params": e["params"]} for e in entries]
        ),
        "seed": first["seed"] if len(entries) == 1 else {e["label"]: e["seed"] for e in entries},
        "timings": {
            "seconds": round(sum(r.seconds for r in results), 4),
            "compute_seconds": round(sum(r.compute_seconds for r in results), 4),
        },
        "passes": {
            "forward": sum(r.forward_passes for r in results),
            "backward": sum(r.backward_passes for r in results),
        },
        "maps": entries,
        "display": display.as_dict(),
        "versions": resources.versions(),
        "metrics": metrics or {},
    }


def card_bytes(content: dict[str, Any]) -> bytes:
    return json.dumps(content, indent=2, ensure_ascii=False, default=str).encode("utf-8")


def maps_npz(
    view: View,
    results: Sequence[Result],
    display: Display,
    labels: Sequence[str] | None = None,
    content: dict[str, Any] | None = None,
) -> bytes:
    """Raw maps (`map_<i>`), their displayed [0, 1] versions (`shown_<i>`), the input picture, labels, card."""
    labels = list(labels) if labels is not None else [r.title for r in results]
    content = content if content is not None else card(view, results, display, labels)
    arrays: dict[str, Any] = {"image": view.picture, "labels": np.asarray(labels, dtype=str)}
    for i, result in enumerate(results):
        arrays[f"map_{i}"] = result.map.astype(np.float32)
        arrays[f"shown_{i}"] = display_mod.map01(result, display).astype(np.float32)
    arrays["card"] = np.asarray(card_bytes(content).decode("utf-8"))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def view_picture(view: View, result: Result, display: Display) -> np.ndarray:
    """Input, overlay and the coloured map side by side, titled."""
    shown = display_mod.map01(result, display)
    cmap = display.cmap_for(result.method)
    tiles = [
        view.picture,
        display_mod.overlay(view, result, display),
        viz.apply_colormap(shown, cmap),
    ]
    titles = [f"Input · {view.target_label}", f"{result.title} overlay", f"{result.title} ({cmap})"]
    return viz.grid(tiles, titles, columns=3)


def view_picture_png(view: View, result: Result, display: Display) -> bytes:
    return viz.png_bytes(view_picture(view, result, display))


def grid_picture(tiles: Sequence[np.ndarray], titles: Sequence[str], columns: int = 4) -> np.ndarray:
    return viz.grid(tiles, titles, columns=columns)


def downloads(
    png: Callable[[], bytes],
    npz: Callable[[], bytes],
    content: dict[str, Any],
    stem: str,
    key: str,
    label: str = "view",
) -> None:
    """Three download buttons in a row: PNG, .npz and the JSON card.

    PNG and .npz are built only when clicked (Streamlit runs the callables on download), so reruns stay cheap.
    """
    with st.container(horizontal=True):
        # (button text, data, file extension, MIME type, icon, key name)
        buttons = (
            (f"PNG of the {label}", png, "png", "image/png", ":material/image:", "png"),
            ("Raw maps (.npz)", npz, "npz", "application/octet-stream", ":material/grid_on:", "npz"),
            ("JSON card", card_bytes(content), "json", "application/json", ":material/description:", "card"),
        )
        for text, data, extension, mime, icon, name in buttons:
            st.download_button(
                text,
                data,
                file_name=f"{stem}.{extension}",
                mime=mime,
                icon=icon,
                key=f"{state.ACTION_PREFIX}{name}.{key}",
                on_click="ignore",
                type="secondary",
            )
