"""The per-image rows of an evaluation (filtered by method), and opening a chosen row in Explore with the
same image, model, method and target.

Opening sets the session keys a share link sets (ui/share.py), through `share.request_view`, which sets
them when Explore's run starts, before the sidebar draws: the image as an upload (a generated scene drawn
again from its seed; a file read only from under the evaluation root), the model and its weights, the
method and its family, and the target's rank among the predictions the sidebar lists, kept for the new
image. Everything is checked first (the image decodes, the target is listed), so a row that cannot be
opened changes nothing and says why.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import streamlit as st

import saliency_core as sc
from saliency_core.dataset import RANDOM
from saliency_core.dataset.metrics import METRICS
from saliency_core.dataset.scenes_run import scene_png, scene_seed
from ui import images, resources, share, state, tasks
from ui.benchmark import leaderboard, load
from ui.sidebar import model as model_picker
from ui.text import md
from ui.view import prepare

EXPLORE = "app.py"
SHOWN = ("image", "method", "target_label", *METRICS, "source")


def _methods(frame: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(frame["method"].tolist()))


def section(found: load.Opened) -> None:
    """The method filter and the table; selecting a row opens it in Explore."""
    frame = found.per_image
    methods = _methods(frame)
    kept = [m for m in st.session_state.get(state.BENCH_FILTER) or [] if m in methods]
    st.session_state[state.BENCH_FILTER] = kept or [m for m in methods if m != RANDOM] or methods
    chosen = st.multiselect(
        "Methods shown", methods, key=state.BENCH_FILTER, format_func=leaderboard.method_title
    )
    rows = frame[frame["method"].isin(chosen)].reset_index(drop=True)
    columns = [c for c in SHOWN if c in rows.columns and (c not in METRICS or rows[c].notna().any())]
    shown = rows[columns].copy()
    shown["method"] = [leaderboard.method_title(m) for m in shown["method"]]
    config = {m: st.column_config.NumberColumn(leaderboard.TITLES[m], format="%.3f") for m in METRICS}
    config.update(image="Image", method="Method", target_label="Target", source="Source")
    st.caption(
        f"{len(rows)} rows. Select a row to open its image in Explore with the same model, method and target "
        "(a baseline row keeps Explore's method)."
    )
    which = hashlib.sha256(repr(sorted(chosen)).encode()).hexdigest()[:8]
    event = st.dataframe(
        shown,
        hide_index=True,
        column_config=config,
        key=state.bench_rows(f"{found.digest}.{which}"),
        on_select="rerun",
        selection_mode="single-row",
    )
    selected = list(event.selection.rows) if event is not None else []
    if not selected:
        st.session_state.pop(state.BENCH_OPENED, None)  # the same row may be chosen again later
        return
    token = (found.digest, which, int(selected[0]))
    last = st.session_state.get(state.BENCH_OPENED)
    if last is not None and last[0] == token:
        if last[1]:
            st.error(last[1], icon=":material/error:")  # why this row could not be opened
        return
    problem = open_in_explore(rows.iloc[int(selected[0])], found)
    st.session_state[state.BENCH_OPENED] = (token, problem)
    if problem:
        st.error(problem, icon=":material/error:")
        return
    st.switch_page(EXPLORE)


def _image(row: pd.Series) -> tuple[bytes, str]:
    """The row's image bytes and a name; raises sc.InvalidImage saying why it cannot be had."""
    source = str(row.get("source") or "")
    seed = scene_seed(source)
    if seed is not None:
        return scene_png(seed), f"scene {seed}"
    if not source:
        raise sc.InvalidImage("This table does not say where its images come from (no source column).")
    base = load.root().resolve()
    path = Path(source).expanduser()
    path = (path if path.is_absolute() else Path.cwd() / path).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        raise sc.InvalidImage(
            f"The image {source} is not a file under this server's evaluation folder ({base.name}); upload it "
            "on Explore instead."
        )
    if path.stat().st_size > images.max_bytes():
        raise sc.InvalidImage(f"The image {path.name} is over this server's upload limit.")
    return path.read_bytes(), path.name


def _weights(row: pd.Series) -> str:
    weights = str(row.get("weights") or "default")
    if weights in ("none", "random"):
        return "random"
    if weights != "default":
        raise sc.InvalidWeights(
            f"The row was evaluated with the weights file {weights}, which Explore cannot load."
        )
    return weights


def _rank(model: sc.LoadedModel, info: sc.ModelInfo, choice: images.ImageChoice, row: pd.Series) -> int:
    """The row's target as a rank among the predictions Explore's target picker lists."""
    x, _ = prepare(choice, model)
    listed = model.predict(x, top_k=tasks.get(model.task).top_k(info))
    index = pd.to_numeric(row.get("target_index"), errors="coerce")
    if pd.isna(index):
        return 0  # a table without target indices: the top prediction, as the evaluation used
    for rank, target in enumerate(listed):
        if getattr(target, "index", None) == int(index):
            return rank
    label = str(row.get("target_label") or int(index))
    raise sc.TargetNotFound(
        f"The row's target ({label}) is not among the {len(listed)} predictions Explore lists for this image."
    )


def open_in_explore(row: pd.Series, found: load.Opened) -> str:
    """Set Explore's image, model, method and target to the row's; "" when done, else why not."""
    model_id = str(row.get("model") or "")
    info = resources.model_info(model_id) if model_id else None
    if info is None:
        return f"The model {md(model_id or '(not named)')} of this row is not in this server's catalogue."
    method = str(row["method"])
    spec = resources.method(method) if method != RANDOM else None
    if method != RANDOM and spec is None:
        return f"The method {md(method)} of this row is not installed on this server."
    try:
        weights = _weights(row)
        data, name = _image(row)
        choice = images.read(data, name, "upload")
        model = resources.load_model(model_id, weights)
        rank = _rank(model, info, choice, row)
    except sc.SaliencyError as exc:
        return md(exc, limit=None)
    values = {
        state.MODEL_SOURCE: model_picker.SOURCES[0],  # the catalogue
        state.MODEL: model_id,
        state.WEIGHTS: {**st.session_state.get(state.WEIGHTS, {}), model_id: weights},
        state.IMAGE: choice,
        state.SOURCE: "Upload",
        state.TARGET: rank,
    }
    if spec is not None:
        values.update({state.METHOD: spec.id, state.FAMILY: spec.family})
    if st.session_state.get(state.BASE) != (choice.digest, model_id, weights):
        values[state.KEEP_TARGET] = True  # the sidebar keeps the rank for the new image and model
    st.session_state.pop(state.IMAGE_ERROR, None)
    share.request_view(values)
    return ""
