"""Running long work under one progress bar with a Cancel button (Explore, Compare, Learn and Evaluate).

Cancelling works through Streamlit itself: clicking Cancel reruns the script, which stops the running one
at its next progress report; the engine releases its locks and hooks on the way out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
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


def _on_cancel(pending_key: str, cancelled_flag: str) -> None:
    st.session_state[state.cancelled_run(pending_key)] = st.session_state.get(pending_key)
    st.session_state[pending_key] = None
    st.session_state[cancelled_flag] = True


def run_jobs(pending_key: str, jobs: Sequence[Job], cancelled_flag: str) -> list[Any]:
    """Run jobs one after another; each job's value, or None where it failed (its message is shown).

    A cancelled run sets `cancelled_flag` in the session state and stops before the remaining jobs.
    """
    out: list[Any] = [None] * len(jobs)
    box = st.empty()
    with box.container():
        bar_col, button_col = st.columns([3, 1], vertical_alignment="center")  # room for "Cancel" at 1000 px
        bar = bar_col.progress(0.0, text="Starting…")
        button_col.button(
            "Cancel",
            key=f"{state.ACTION_PREFIX}cancel.{pending_key}",
            icon=":material/stop_circle:",
            on_click=_on_cancel,
            args=(pending_key, cancelled_flag),
            width="stretch",
        )
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
        except sc.SaliencyError as exc:
            errors.append(f"**{md(job.label)}**: {md(exc, limit=None)}")
        except Exception as exc:  # a bug or out of memory: say so, keep the session, log the details
            _log.exception("%s failed", job.label)
            errors.append(
                f"**{md(job.label)}** failed unexpectedly ({type(exc).__name__}); the details are in the server log."
            )
    box.empty()
    st.session_state[pending_key] = None
    for message in errors:
        st.error(message, icon=":material/error:")
    return out
