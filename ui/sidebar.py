"""The shared sidebar: image source, model (with weights status) and target; builds the current View.

Every page runs under it (app.py draws it before the page), and its choices live in st.session_state, so
they carry across pages.
"""

from __future__ import annotations

import streamlit as st

import saliency_core as sc
from ui import images, resources, sidebar_model, sidebar_target, state
from ui.view import View

SOURCES = ["Samples", "Upload", "Camera"]


def render() -> View | None:
    """Draw the sidebar and store the resulting view (or None) for the page."""
    view = None
    with st.sidebar:
        source = _image_section()
        choice = images.current()
        model = sidebar_model.section()
        if choice is not None and model is not None:
            view = sidebar_target.section(choice, model)
        if source == "Samples":
            # Last, so that model and target stay in sight above the (long) gallery.
            _gallery(resources.samples())
    st.session_state[state.VIEW] = view
    return view


# --- image ---------------------------------------------------------------------------------------------
def sample_label(sample: sc.Sample) -> str:
    """A label that fits under a thumbnail: the shape and scene number, or the photo's first word."""
    if sample.kind == "synthetic" and sample.label:
        number = sample.id.rsplit("_", 1)[-1].lstrip("0") or "0"
        return f"{sample.label} {number}"
    return sample.id.split("_")[0]


def _image_section() -> str:
    st.subheader("Image")
    samples = resources.samples()
    if images.current() is None and samples:
        images.use_sample(samples[0].id)  # start on a synthetic scene the demo model knows
    state.default(state.SOURCE, SOURCES[0], allowed=SOURCES)
    source = st.segmented_control(
        "Image source", SOURCES, key=state.SOURCE, required=True, label_visibility="collapsed"
    )
    if source == "Upload":
        _uploader()
    elif source == "Camera":
        _camera()
    error = st.session_state.get(state.IMAGE_ERROR)
    if error:
        st.error(error, icon=":material/broken_image:")
    choice = images.current()
    if choice is not None:
        st.caption(f"In use: **{choice.name}** ({choice.width}×{choice.height}, {choice.source})")
    elif source == "Samples":
        st.caption("Pick a sample from the gallery below.")
    return str(source)


def _gallery(samples: list[sc.Sample]) -> None:
    st.subheader("Samples")
    if not samples:
        st.info("No bundled samples are installed; upload an image instead.")
        return
    current = images.current()
    columns = st.columns(3, gap="small")
    for i, sample in enumerate(samples):
        with columns[i % 3]:
            thumb = resources.thumbnail(sample.id)
            if thumb is not None:
                st.image(thumb, width="stretch")
            chosen = current is not None and current.sample_id == sample.id
            label = sample_label(sample)
            st.button(
                f":primary[**{label}**]" if chosen else label,
                key=f"{state.ACTION_PREFIX}sample.{sample.id}",
                help=sample.title + (f" — {sample.credit}" if sample.credit else ""),
                type="tertiary",
                width="stretch",
                on_click=images.use_sample,
                args=(sample.id,),
            )


def _uploader() -> None:
    upload = st.file_uploader(
        "Upload an image",
        type=images.UPLOAD_TYPES,
        key=f"{state.ACTION_PREFIX}upload",
        max_upload_size=images.MAX_BYTES // 2**20,
        help="PNG, JPEG, WebP, BMP, TIFF or GIF (first frame), up to 25 MB.",
    )
    if upload is not None and st.session_state.get("sel.upload_id") != upload.file_id:
        st.session_state["sel.upload_id"] = upload.file_id
        images.accept(upload.getvalue(), upload.name, "upload")


def _camera() -> None:
    shot = st.camera_input("Take a picture", key=f"{state.ACTION_PREFIX}camera")
    if shot is not None and st.session_state.get("sel.camera_id") != shot.file_id:
        st.session_state["sel.camera_id"] = shot.file_id
        images.accept(shot.getvalue(), "camera picture", "camera")
