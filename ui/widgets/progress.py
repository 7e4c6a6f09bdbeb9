"""Long work under one progress bar with a Cancel button (Explore, Compare, Learn and Evaluate).

Two ways: `watch_jobs` polls background jobs of the engine (saliency maps: a job outlives the page, so
leaving it, switching pages or a second tab attaches to the same run; Cancel detaches this session and
stops the job when nobody else waits for it); `run_jobs` runs work inline in the script (Evaluate's
metrics, downloads), where clicking Cancel reruns the script, which stops the running one at its next
progress report; the engine releases its locks and hooks on the way out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import streamlit as st

import saliency_core as sc
from saliency_core.methods.context import ProgressFn
from ui import state
from ui.text import md

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One unit of work: `work(progress)` returns its value (also stored by the work itself if wanted)."""

    label: str
    work: Callable[[ProgressFn], Any]
    key: Hashable | None = None  # given: the work can run as an engine job keyed by it (ui.evaluate.common)


def _on_cancel(pending_key: str, cancelled_flag: str) -> None:
    st.session_state[state.cancelled_run(pending_key)] = st.session_state.get(pending_key)
    st.session_state[pending_key] = None
    st.session_state[cancelled_flag] = True


def _bar_with_cancel(pending_key: str, on_cancel: Callable[..., None], args: tuple) -> tuple[Any, Any]:
    """(the box to empty when done, the progress bar) with a Cancel button beside the bar."""
    box = st.empty()
    with box.container():
        bar_col, button_col = st.columns([3, 1], vertical_alignment="center")  # room for "Cancel" at 1000 px
        bar = bar_col.progress(0.0, text="Starting…")
        button_col.button(
            "Cancel",
            key=f"{state.ACTION_PREFIX}cancel.{pending_key}",
            icon=":material/stop_circle:",
            on_click=on_cancel,
            args=args,
            width="stretch",
        )
    return box, bar


def failure_message(label: str, exc: Exception) -> str:
    """What the page says of a failed job: the library's message, or, for a bug or running out of memory,
    that it failed (the details go to the server log, the session keeps working)."""
    if isinstance(exc, sc.SaliencyError):
        return f"**{md(label)}**: {md(exc, limit=None)}"
    _log.error("%s failed", label, exc_info=exc)
    return f"**{md(label)}** failed unexpectedly ({type(exc).__name__}); the details are in the server log."


def run_jobs(pending_key: str, jobs: Sequence[Job], cancelled_flag: str) -> list[Any]:
    """Run jobs one after another; each job's value, or None where it failed (its message is shown).

    A cancelled run sets `cancelled_flag` in the session state and stops before the remaining jobs.
    """
    out: list[Any] = [None] * len(jobs)
    box, bar = _bar_with_cancel(pending_key, _on_cancel, (pending_key, cancelled_flag))
    errors = []
    for n, job in enumerate(jobs):
        prefix = f"{job.label} ({n + 1}/{len(jobs)})" if len(jobs) > 1 else job.label

        def progress(fraction: float, message: str, _n: int = n, _prefix: str = prefix) -> None:
            fraction = min(max(fraction, 0.0), 1.0)
            message = message or "computing"
            # Methods often name themselves in their messages ("RISE masks"): do not say it twice.
            text = message if message.startswith(_prefix.split(" (")[0]) else f"{_prefix}: {message}"
            bar.progress((_n + fraction) / len(jobs), text=f"{text} — {fraction:.0%}")

        progress(0.0, "starting")
        try:
            out[n] = job.work(progress)
        except sc.Cancelled:
            st.session_state[cancelled_flag] = True
            break
        except Exception as exc:
            errors.append(failure_message(job.label, exc))
    box.empty()
    st.session_state[pending_key] = None
    for message in errors:
        st.error(message, icon=":material/error:")
    return out


# --- background jobs of the engine ----------------------------------------------------------------------
POLL_SECONDS = 0.15  # how often the bar is redrawn; the sleep between redraws is where a page is left


def _on_cancel_jobs(
    pending_key: str, cancelled_flag: str, jobs: tuple[sc.Job, ...], watcher: Hashable
) -> None:
    _on_cancel(pending_key, cancelled_flag)
    for job in jobs:
        job.cancel(watcher)  # stops it only if no other session waits for it


def bar_text(labels: Sequence[str], snaps: Sequence[sc.JobProgress]) -> tuple[float, str]:
    """(overall fraction, text) of jobs shown under one bar: the first unfinished one speaks."""
    n = len(snaps)
    total = sum(1.0 if s.finished else s.fraction for s in snaps) / max(n, 1)
    i = next((i for i, s in enumerate(snaps) if not s.finished), n - 1)
    label, snap = labels[i], snaps[i]
    prefix = f"{label} ({i + 1}/{n})" if n > 1 else label
    message = snap.message or "computing"
    # Methods often name themselves in their messages ("RISE masks"): do not say it twice.
    text = message if message.startswith(label) else f"{prefix}: {message}"
    return min(max(total, 0.0), 1.0), f"{text} — {snap.fraction:.0%}"


# (job's label, partial map [H, W], what produced it) -> draws it; called while a progressive method refines
PreviewDraw = Callable[[str, Any, str], None]


def watch_jobs(
    pending_key: str,
    jobs: Sequence[tuple[str, sc.Job]],
    cancelled_flag: str,
    watcher: Hashable,
    draw_preview: PreviewDraw | None = None,
) -> list[Any]:
    """Poll (label, job) pairs under one bar with Cancel until all finish; each job's value, or None where
    it failed (its message is shown) or was cancelled (`cancelled_flag` is set). With `draw_preview`, the
    partial map of the job that speaks is redrawn under the bar whenever it changes.

    The script only polls: when the page is left (or Cancel reruns it) the polling stops at the next
    redraw, and the jobs run on."""
    out: list[Any] = [None] * len(jobs)
    if not jobs:
        return out
    labels = [label for label, _ in jobs]
    cancel_args = (pending_key, cancelled_flag, tuple(job for _, job in jobs), watcher)
    box, bar = _bar_with_cancel(pending_key, _on_cancel_jobs, cancel_args)
    preview_box = st.empty()
    shown: tuple[int, str] | None = None
    while True:
        snaps = [job.progress for _, job in jobs]
        fraction, text = bar_text(labels, snaps)
        bar.progress(fraction, text=text)
        if all(s.finished for s in snaps):
            break
        if draw_preview is not None:
            shown = _redraw_preview(preview_box, jobs, snaps, draw_preview, shown)
        time.sleep(POLL_SECONDS)
    box.empty()
    preview_box.empty()
    st.session_state[pending_key] = None
    errors = []
    for n, (label, job) in enumerate(jobs):
        try:
            out[n] = job.result(0)
        except sc.Cancelled:
            st.session_state[cancelled_flag] = True
        except Exception as exc:
            errors.append(failure_message(label, exc))
    for message in errors:
        st.error(message, icon=":material/error:")
    return out


def _redraw_preview(
    place: Any,
    jobs: Sequence[tuple[str, sc.Job]],
    snaps: Sequence[sc.JobProgress],
    draw: PreviewDraw,
    shown: tuple[int, str] | None,
) -> tuple[int, str] | None:
    """Draw the speaking job's latest partial map into `place` when it is new; what is shown now."""
    i = next((i for i, s in enumerate(snaps) if not s.finished), None)
    found = jobs[i][1].preview if i is not None else None
    if i is None or found is None or shown == (i, found[1]):
        return shown
    with place.container():
        draw(jobs[i][0], found[0], found[1])
    return (i, found[1])
