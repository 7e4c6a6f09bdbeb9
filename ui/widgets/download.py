"""Downloading a model's missing weights from the sidebar: progress with size and time left, Cancel, and
at once a plain "offline" when this server cannot download (the weights then have to be placed by hand)."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

import saliency_core as sc
from saliency_core.models.download import offline_reason
from ui import resources, state
from ui.text import md
from ui.widgets.progress import Job, run_jobs


def _start(model_id: str) -> None:
    st.session_state[state.DOWNLOAD] = model_id
    st.session_state.setdefault(state.DOWNLOAD_ERROR, {}).pop(model_id, None)


def offer(model_id: str, title: str, on_done: Callable[[], None] | None = None) -> None:
    """The download button for `model_id`'s default weights, or why there is none; while it runs, its
    progress bar and Cancel. When the file has arrived, `on_done` runs and the page reruns with it."""
    reason = offline_reason()
    if reason:
        st.caption(f"Downloading is off: {reason}.")
        return
    errors = st.session_state.setdefault(state.DOWNLOAD_ERROR, {})
    if st.session_state.pop(state.DOWNLOAD_CANCELLED, False):
        st.info("The download was cancelled; nothing was kept.", icon=":material/stop_circle:")
    if st.session_state.get(state.DOWNLOAD) == model_id and _run(model_id, title):
        resources.models.clear()  # weights_available changed
        if on_done is not None:
            on_done()
        st.rerun()
    if model_id in errors:
        st.error(md(errors[model_id], limit=None), icon=":material/cloud_off:")
    st.button(
        "Download the weights" if model_id not in errors else "Try the download again",
        key=f"{state.ACTION_PREFIX}download.{model_id}",
        icon=":material/download:",
        on_click=_start,
        args=(model_id,),
        disabled=st.session_state.get(state.DOWNLOAD) == model_id,
        width="stretch",
    )


def _run(model_id: str, title: str) -> bool:
    """Download under a progress bar; True when the file is in place."""

    def work(progress: sc.ProgressFn) -> object:
        def report(p: sc.DownloadProgress) -> None:
            progress(p.fraction or 0.0, p.describe())

        try:
            return sc.download_weights(model_id, progress=report)
        except sc.WeightsUnavailable as exc:
            st.session_state.setdefault(state.DOWNLOAD_ERROR, {})[model_id] = str(exc)
            return None

    done = run_jobs(state.DOWNLOAD, [Job(f"Downloading {title}", work)], state.DOWNLOAD_CANCELLED)
    return done[0] is not None
