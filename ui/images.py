"""The image in use: where it came from, its bytes and digest; accepting new images without losing the old one;
encoded pictures kept per session for redraws."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import streamlit as st
from PIL import Image

import saliency_core as sc
from saliency_core import viz
from ui import resources, state
from ui.store import session_store
from ui.text import md

UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif"]


def max_bytes() -> int:
    """The uploader's limit (the server's max_upload_bytes), checked again for bytes that bypass it."""
    return int(sc.limits().max_upload_bytes)


def __getattr__(name: str) -> int:
    # MAX_BYTES follows the limits in force (they can change after import), so it is computed on access.
    if name == "MAX_BYTES":
        return max_bytes()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def megabytes(size: int) -> str:
    """A byte count in MB as people write it: 25, 2.5, 0.25."""
    return f"{size / 2**20:.3g}"


def md_escape(text: str) -> str:
    """`text` shown literally in Streamlit markdown: file names and messages are user-controlled."""
    return md(text, limit=None)  # the one escaping rule of the app (ui/text.py)


@dataclass(frozen=True)
class ImageChoice:
    """An accepted image: its bytes (kept so exports and reruns never need the source again)."""

    data: bytes = field(repr=False)
    name: str
    source: str  # "sample" | "upload" | "camera"
    digest: str
    width: int
    height: int
    sample_id: str | None = None
    note: str = ""  # what reading it found that the person should know (e.g. NaN pixels shown black)


def read(data: bytes, name: str, source: str, sample_id: str | None = None) -> ImageChoice:
    """Check that `data` is a readable image and describe it; raises sc.InvalidImage with a plain message."""
    limit = max_bytes()
    if len(data) > limit:
        raise sc.InvalidImage(
            f"{name} is {len(data) / 2**20:.1f} MB; the limit is {megabytes(limit)} MB. Please downscale it."
        )
    image = sc.load_image(data)
    note = str(image.info.get("saliency_note", ""))
    digest = resources.digest(data)
    return ImageChoice(data, name, source, digest, image.width, image.height, sample_id, note)


def accept(data: bytes, name: str, source: str, sample_id: str | None = None) -> bool:
    """Make `data` the current image; on failure keep the current one and remember the message."""
    try:
        choice = read(data, name, source, sample_id)
    except (sc.InvalidImage, sc.ResourceLimit) as exc:  # unreadable, or over a limit: a message either way
        st.session_state[state.IMAGE_ERROR] = md_escape(f"Could not use {name}: {exc}")
        return False
    st.session_state[state.IMAGE] = choice
    st.session_state.pop(state.IMAGE_ERROR, None)
    return True


def use_sample(sample_id: str) -> bool:
    """Make a bundled sample the current image."""
    data = resources.sample_bytes(sample_id)
    found = resources.sample(sample_id)
    if data is None or found is None:
        st.session_state[state.IMAGE_ERROR] = (
            f"The sample '{md(sample_id)}' is not bundled with this installation."
        )
        return False
    return accept(data, found.title, "sample", sample_id)


def current() -> ImageChoice | None:
    return st.session_state.get(state.IMAGE)


def pil(choice: ImageChoice) -> Image.Image:
    """The decoded image (decoded once per session and image)."""
    cache = st.session_state.setdefault(state.DECODED, {})
    if choice.digest not in cache:
        cache.clear()  # one decoded image per session is enough
        cache[choice.digest] = sc.load_image(choice.data)
    return cache[choice.digest]


ENCODED_ENTRIES = 24  # pictures and figures per session (a 224 px PNG is ~100 kB): a few views' worth


def remembered(key: tuple, make: Callable[[], Any]) -> Any:
    """`make()` kept per session under `key` (least recently used dropped first), so a rerun that draws
    the same thing again (e.g. only the colormap changed) reuses what is unchanged."""
    found = session_store(state.ENCODED, ENCODED_ENTRIES)
    value = found.get(key)
    if value is None:
        value = make()
        found.put(key, value)
    return value


def encoded(key: tuple, make: Callable[[], np.ndarray]) -> bytes:
    """The picture `make()` returns as PNG bytes, encoded once per session and `key`."""
    return remembered(("png", *key), lambda: png(make()))


def png(picture: np.ndarray) -> bytes:
    """Fast PNG (low compression: these bytes only travel to the browser once per picture)."""
    buffer = io.BytesIO()
    Image.fromarray(viz.to_rgb_uint8(picture)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
