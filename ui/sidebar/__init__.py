"""The shared sidebar: image source, model (with weights status) and target; builds the current View.

Every page runs under it (ui.shell draws it before the page), and its choices live in st.session_state, so
they carry across pages. Its sections: `image` (source, upload, camera, gallery), `model` (picker, weights,
`weights_files` for uploaded weights) and `target` (what to explain, per task).
"""

from __future__ import annotations

import streamlit as st

from ui import images, resources, state
from ui.sidebar import image, model, target
from ui.sidebar.image import SOURCES, sample_label
from ui.view import View

__all__ = ["SOURCES", "render", "sample_label"]


def render() -> View | None:
    """Draw the sidebar and store the resulting view (or None) for the page."""
    view = None
    with st.sidebar:
        source = image.section()
        choice = images.current()
        loaded = model.section()
        if choice is not None and loaded is not None:
            view = target.section(choice, loaded)
        if source == "Samples":
            # Last, so that model and target stay in sight above the (long) gallery.
            image.gallery(resources.samples())
    st.session_state[state.VIEW] = view
    return view
