"""Exports: the view or a grid as PNG, raw maps as .npz, and a JSON card that says how each map was made.

The builders are plain functions (tested without a browser); `downloads` draws the buttons. The card has a
`metrics` field that pages with evaluations (e.g. Evaluate) fill through `card(..., metrics=...)`.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import streamlit as st

from saliency_core import card as card_mod
from saliency_core import viz
from ui import display as display_mod
from ui import state
from ui.display import Display
from ui.results import Result
from ui.view import View

CARD_SCHEMA = card_mod.CARD_SCHEMA


def file_stem(view: View) -> str:
    """A file-name stem naming the image: the sample id, or the source and a digest prefix."""
    base = view.image.sample_id or f"{view.image.source}-{view.image.digest[:10]}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{base}_{view.info.id}")


def record(result: Result, display: Display, label: str | None = None) -> card_mod.MapRecord:
    """A computed map as the library's card record, with the sign it is displayed with."""
    return card_mod.MapRecord(
        method=result.method,
        title=result.title,
        family=result.family,
        params=result.params,
        target_index=result.target_index,
        target_label=result.target_label,
        seconds=result.seconds,
        compute_seconds=result.compute_seconds,
        from_cache=result.engine_cached,
        forward_passes=result.forward_passes,
        backward_passes=result.backward_passes,
        device=result.device,
        shape=tuple(result.map.shape),
        raw_shape=tuple(result.raw_shape),
        minimum=float(result.map.min()),
        maximum=float(result.map.max()),
        sign=display.sign_for(result.method),
        extras=result.extras,
        notes=result.notes,
        label=label,
    )


def map_entry(result: Result, display: Display, label: str | None = None) -> dict[str, Any]:
    """How one map was made, for the card."""
    return record(result, display, label).entry()


def _weights_file(view: View) -> str | None:
    if view.weights == "default":
        return view.info.weights_path
    upload = st.session_state.get(state.WEIGHTS_FILES, {}).get(view.info.id)
    if view.weights.startswith("file") and upload is not None:
        return f"uploaded {upload.name} (sha256 {upload.sha256})"
    return None


def card(
    view: View,
    results: Sequence[Result],
    display: Display,
    labels: Sequence[str] | None = None,
    metrics: dict[str, Any] | None = None,
    page: str = "explore",
) -> dict[str, Any]:
    """The JSON card of one view and its maps, built by the library (saliency_core.card) from the image,
    model, target and maps, with what only the app knows: the page, the display settings, an uploaded
    weights file, a segmentation rectangle, a detection threshold."""
    labels = list(labels) if labels is not None else [r.title for r in results]
    image = view.image
    return card_mod.card(
        [record(r, display, lab) for r, lab in zip(results, labels)],
        image=card_mod.image_fields(
            sha256=image.digest,
            name=image.name,
            source=image.source,
            sample_id=image.sample_id,
            size=(image.width, image.height),
            input_size=view.picture.shape[:2],
        ),
        model=view.model,
        weights=view.weights,
        weights_file=_weights_file(view),
        target=card_mod.target_fields(
            view.target,
            view.target_index,
            view.target_label,
            region=list(view.region) if view.region is not None else None,
            threshold=view.threshold,
        ),
        page=page,
        display=display.as_dict(),
        metrics=metrics,
    )


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
