"""Sidebar: the image section (source, upload, camera) and the gallery of bundled samples."""

from __future__ import annotations

import streamlit as st

import saliency_core as sc
from ui import images, resources, state

SOURCES = ["Samples", "Upload", "Camera"]


def sample_label(sample: sc.Sample) -> str:
    """A label that fits under a thumbnail: the shape and scene number, or the photo's first word."""
    if sample.kind == "synthetic" and sample.label:
        number = sample.id.rsplit("_", 1)[-1].lstrip("0") or "0"
        return f"{sample.label} {number}"
    return sample.id.split("_")[0]


def section() -> str:
    """The image source and, for uploads and the camera, their widgets; returns the source."""
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
        name = images.md_escape(choice.name)
        st.caption(f"In use: **{name}** ({choice.width}×{choice.height}, {choice.source})")
        if choice.note:
            st.info(images.md_escape(choice.note), icon=":material/info:")
    elif source == "Samples":
        st.caption("Pick a sample from the gallery below.")
    return str(source)


def gallery(samples: list[sc.Sample]) -> None:
    """The bundled samples as thumbnails, each with a button that makes it the image in use."""
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
        max_upload_size=max(1, images.max_bytes() // 2**20),  # whole MB; read() checks the exact limit
        help=f"PNG, JPEG, WebP, BMP, TIFF or GIF (first frame), up to {images.megabytes(images.max_bytes())} MB.",
    )
    if upload is not None and st.session_state.get(state.UPLOAD_ID) != upload.file_id:
        st.session_state[state.UPLOAD_ID] = upload.file_id
        images.accept(upload.getvalue(), upload.name, "upload")


def _camera() -> None:
    shot = st.camera_input("Take a picture", key=f"{state.ACTION_PREFIX}camera")
    if shot is not None and st.session_state.get(state.CAMERA_ID) != shot.file_id:
        st.session_state[state.CAMERA_ID] = shot.file_id
        images.accept(shot.getvalue(), "camera picture", "camera")
