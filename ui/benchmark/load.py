"""Opening an evaluation result: the folders under the evaluation root, and a per-image table read from
one of them or from an upload, checked before anything is shown.

Only Parquet (pyarrow) and CSV (pandas) are parsed; nothing is unpickled. Tables are bounded in bytes by
the server's upload limit and in rows here, because the leaderboard bootstraps every method's images.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import streamlit as st

import saliency_core as sc
from saliency_core.dataset import summarise
from saliency_core.dataset.metrics import METRICS
from ui import state

ROOT_ENV = "SALIENCY_EVAL_DIR"
DEFAULT_ROOT = "saliency_eval"
TABLES = ("per_image.parquet", "per_image.csv")  # what an evaluation folder holds, the first one read
MAX_FOLDERS = 200  # listed under the root, newest first
MAX_ROWS = 60_000  # rows of a per-image table
MAX_IMAGES = 5_000  # images of one method: 2000 bootstrap resamples of each stay ~80 MB
REQUIRED = ("image", "method")
TEXT_COLUMNS = ("image", "source", "sha256", "target_label", "method", "model", "weights")


class BadTable(Exception):
    """A file that is not a per-image table of an evaluation; the message says why, for a person."""


@dataclass(frozen=True, eq=False)
class Opened:
    """An evaluation on show: where it came from, its per-image table and the summary computed from it."""

    name: str  # the folder's name or the uploaded file's
    origin: str  # "folder" | "upload" | "run"
    per_image: pd.DataFrame = field(repr=False)
    summary: pd.DataFrame = field(repr=False)
    digest: str  # of the table's bytes: names the result's widgets
    folder: Path | None = None  # the folder it was read from (None for an upload)


def root() -> Path:
    """The evaluation root: $SALIENCY_EVAL_DIR, else ./saliency_eval."""
    return Path(os.environ.get(ROOT_ENV) or DEFAULT_ROOT).expanduser()


def table_file(folder: Path) -> Path | None:
    """The per-image table of an evaluation folder (Parquet first), or None."""
    return next((folder / n for n in TABLES if (folder / n).is_file()), None)


def folders(base: Path | None = None) -> list[str]:
    """Names of the root's subfolders that hold a per-image table, newest first (at most MAX_FOLDERS)."""
    base = root() if base is None else base
    try:
        found = [p for p in base.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))]
    except OSError:
        return []
    found = [(p, table_file(p)) for p in found]
    found = [(p, t) for p, t in found if t is not None]
    found.sort(key=lambda pt: (-pt[1].stat().st_mtime, pt[0].name))
    return [p.name for p, _ in found[:MAX_FOLDERS]]


def in_root(name: str, base: Path | None = None) -> Path | None:
    """The folder `name` under the root, or None for a name that leaves it (a link's `..`, a symlink)."""
    base = (root() if base is None else base).resolve()
    folder = (base / name).resolve()
    return folder if folder.parent == base and folder.is_dir() else None


def parse(data: bytes, name: str) -> pd.DataFrame:
    """The per-image table in `data` (Parquet or CSV, told by its first bytes), checked; raises BadTable."""
    limit = int(sc.limits().max_upload_bytes)
    if len(data) > limit:
        raise BadTable(f"{name} is {len(data) / 2**20:.1f} MB; the limit is {limit / 2**20:.3g} MB.")
    if not data.strip():
        raise BadTable(f"{name} is empty.")
    try:
        if data[:4] == b"PAR1":
            rows = pq.ParquetFile(io.BytesIO(data)).metadata.num_rows  # before inflating anything
            if rows > MAX_ROWS:
                raise BadTable(f"{name} has {rows} rows; this page reads up to {MAX_ROWS}.")
            frame = pd.read_parquet(io.BytesIO(data), engine="pyarrow")
        else:
            frame = pd.read_csv(io.BytesIO(data), nrows=MAX_ROWS + 1, encoding_errors="strict")
    except BadTable:
        raise
    except Exception as exc:  # any parser's complaint: the file is not a table this page reads
        raise BadTable(f"{name} is neither a Parquet nor a CSV table ({type(exc).__name__}).") from exc
    return check(frame, name)


def check(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """`frame` with its metric columns as numbers, or BadTable saying what is wrong with it."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    metrics = [m for m in METRICS if m in frame.columns]
    if missing or not metrics:
        need = ", ".join(missing) if missing else "a metric (" + ", ".join(METRICS) + ")"
        raise BadTable(f"{name} is not a per-image table of an evaluation: it has no column {need}.")
    if frame.empty:
        raise BadTable(f"{name} has no rows.")
    if len(frame) > MAX_ROWS:
        raise BadTable(f"{name} has more than {MAX_ROWS} rows; summarise it with the evaluate command.")
    frame = frame.copy()
    for metric in METRICS:
        if metric not in frame.columns:
            frame[metric] = float("nan")
        values = pd.to_numeric(frame[metric], errors="coerce")
        if (values.isna() & frame[metric].notna()).any():
            raise BadTable(f"{name}: the column {metric} holds values that are not numbers.")
        frame[metric] = values.astype(float)
    if "seconds" not in frame.columns:
        frame["seconds"] = float("nan")
    frame["seconds"] = pd.to_numeric(frame["seconds"], errors="coerce").astype(float)
    for column in TEXT_COLUMNS:
        if column in frame.columns:
            frame[column] = frame[column].astype("string").fillna("")
    if "target_index" in frame.columns:
        frame["target_index"] = pd.to_numeric(frame["target_index"], errors="coerce")
    largest = int(frame["method"].value_counts().max())
    if largest > MAX_IMAGES:
        raise BadTable(f"{name} has {largest} images of one method; this page summarises up to {MAX_IMAGES}.")
    return frame.reset_index(drop=True)


@st.cache_data(max_entries=8, show_spinner=False)
def _summary(data: bytes, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    # Cached by the bytes: reopening a table (or another session opening it) costs no bootstrap.
    frame = parse(data, name)
    return frame, summarise(frame)


def read(data: bytes, name: str, origin: str, folder: Path | None = None) -> Opened:
    """The evaluation in `data`; raises BadTable."""
    frame, summary = _summary(data, name)
    digest = hashlib.sha256(data).hexdigest()[:16]
    return Opened(name, origin, frame, summary, digest, folder)


def open_folder(folder: Path, origin: str = "folder") -> bool:
    """Show the evaluation in `folder`; on failure keep what is shown and remember why."""
    table = table_file(folder)
    if table is None:
        return _failed(f"The folder {folder.name} holds no per-image table ({' or '.join(TABLES)}).")
    try:
        if table.stat().st_size > int(sc.limits().max_upload_bytes):
            raise BadTable(f"{table.name} of {folder.name} is over this server's size limit for tables.")
        return _opened(read(table.read_bytes(), f"{folder.name}/{table.name}", origin, folder))
    except OSError as exc:
        return _failed(f"{folder.name}/{table.name} cannot be read: {exc.strerror or exc}.")
    except BadTable as exc:
        return _failed(str(exc))


def open_upload(data: bytes, name: str) -> bool:
    """Show an uploaded per-image table; on failure keep what is shown and remember why."""
    try:
        return _opened(read(data, name, "upload"))
    except BadTable as exc:
        return _failed(str(exc))


def _opened(found: Opened) -> bool:
    st.session_state[state.BENCH_RESULT] = found
    st.session_state.pop(state.BENCH_ERROR, None)
    return True


def _failed(message: str) -> bool:
    st.session_state[state.BENCH_ERROR] = message
    return False


def current() -> Opened | None:
    return st.session_state.get(state.BENCH_RESULT)


def describe(found: Opened) -> dict[str, Any]:
    """What the caption says of an evaluation: images, methods, model."""
    frame = found.per_image
    models = sorted({m for m in frame.get("model", pd.Series(dtype="string")).tolist() if m})
    return {"images": frame["image"].nunique(), "methods": frame["method"].nunique(), "models": models}
