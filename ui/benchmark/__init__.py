"""The Benchmark page: open an evaluation result (a folder under the evaluation root, or an uploaded
per-image table) or run a small one on the generated scenes; a leaderboard of methods with bootstrap
intervals beside the random-map baseline; per-image rows that open in Explore.

Modules: `load` (folders, reading and checking tables), `run` (the scenes run as an engine job),
`leaderboard` (table and chart), `rows` (per-image rows, opening one in Explore).
"""

from __future__ import annotations

import streamlit as st

from ui import images, state
from ui.benchmark import leaderboard, load, rows, run
from ui.text import md

__all__ = ["leaderboard", "load", "page", "rows", "run"]


def page() -> None:
    """The whole page under its title."""
    st.markdown(
        "Which method is faithful for this model, over many images rather than one? Open an evaluation "
        "written by `python -m saliency_core evaluate` (or upload its per-image table), or run a small one "
        "on generated scenes with exact object masks."
    )
    opening, running = st.tabs(["Open a result", "Run on generated scenes"])
    with opening:
        _open_section()
    with running:
        run.section()
    run.progress()
    error = st.session_state.get(state.BENCH_ERROR)
    if error:
        st.error(md(error, limit=None), icon=":material/error:")
    found = load.current()
    if found is None:
        st.info("Open a result or run one to see the leaderboard.", icon=":material/leaderboard:")
        return
    about = load.describe(found)
    models = ", ".join(md(m) for m in about["models"]) or "unnamed"
    st.subheader("Leaderboard")
    st.caption(
        f"**{md(found.name)}** ({found.origin}): {about['images']} images, {about['methods']} methods "
        f"with the baseline, model {models}."
    )
    leaderboard.section(found.summary)
    st.subheader("Per-image rows")
    rows.section(found)


def _open_section() -> None:
    root = load.root()
    names = load.folders(root)
    if names:
        state.default(state.BENCH_FOLDER, names[0], allowed=names)
        left, right = st.columns([3, 1], vertical_alignment="bottom")
        name = left.selectbox(
            "Evaluation folder",
            names,
            key=state.BENCH_FOLDER,
            help=f"Folders under {root} (set SALIENCY_EVAL_DIR) that hold per_image.parquet or .csv.",
        )
        if right.button("Open", key=f"{state.ACTION_PREFIX}benchmark.open", icon=":material/folder_open:"):
            folder = load.in_root(str(name), root)
            if folder is None:
                st.session_state[state.BENCH_ERROR] = f"The folder {name} is no longer under {root}."
            else:
                load.open_folder(folder)
    else:
        st.caption(f"No evaluation folder under {md(str(root))} yet (set SALIENCY_EVAL_DIR to another root).")
    limit = images.megabytes(images.max_bytes())
    upload = st.file_uploader(
        "Or upload a per-image table",
        type=["parquet", "csv"],
        key=state.BENCH_UPLOAD,
        max_upload_size=max(1, images.max_bytes() // 2**20),
        help=f"per_image.parquet or per_image.csv of an evaluation, up to {limit} MB.",
    )
    if upload is not None and st.session_state.get(state.BENCH_UPLOAD_ID) != upload.file_id:
        st.session_state[state.BENCH_UPLOAD_ID] = upload.file_id
        load.open_upload(upload.getvalue(), upload.name)
