"""What the Evaluate page's sections share: its method picker, and running metric jobs under one progress bar
with a Cancel button.

The evaluations themselves (their entries and the session's store of them) are in ui.cards, which the
Explore page's card reads too. Cancelling works as on Explore: the Cancel button reruns the script, which
stops the running one at its next progress report.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st
from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx
from streamlit.runtime.state.safe_session_state import SafeSessionState

import saliency_core as sc
from saliency_core.methods.context import ProgressFn
from ui import resources, results, state
from ui.view import View
from ui.widgets import variants
from ui.widgets.progress import Job, watch_jobs
from ui.widgets.progress import run_jobs as _run_jobs
from ui.widgets.variants import Variant

STORE = state.EVALUATIONS  # where ui.cards.store() keeps the evaluations
MAX_METHODS = 6
METHODS_HELP = (
    "Each uses the parameters last set for it on the Explore page (defaults otherwise); maps already "
    "computed in this session are reused."
)


def no_target(view: View) -> bool:
    """Say so and return True when the model predicts nothing to explain on this image."""
    if view.target is not None:
        return False
    st.info(
        "The model predicts nothing on this image, so there is no target to evaluate: see the sidebar "
        "(a lower score threshold, another image or other weights may help).",
        icon=":material/search_off:",
    )
    return True


# --- pickers ---------------------------------------------------------------------------------------------
def choose_methods(view: View, key: str, limit: int = MAX_METHODS, label: str = "Methods") -> list[Variant]:
    """The methods to evaluate (first: those explored, else Grad-CAM and the gradient), each with the
    parameters last set for it on Explore."""
    return variants.choose_methods(view, key, resources.featured("evaluate"), limit, label, help=METHODS_HELP)


# --- running ---------------------------------------------------------------------------------------------
def part(progress: ProgressFn, start: float, stop: float) -> ProgressFn:
    """Progress of a part mapped onto [start, stop] of the whole."""
    return lambda f, message: progress(start + (stop - start) * min(1.0, max(0.0, f)), message)


def run_button(pending_key: str, key: Any, label: str = "Run", disabled: bool = False) -> None:
    st.button(
        label,
        key=f"{state.ACTION_PREFIX}{pending_key}",
        type="primary",
        icon=":material/play_arrow:",
        on_click=results.request,
        args=(pending_key, key),
        disabled=disabled,
    )


def show_cancelled() -> None:
    """Say once that the last run was cancelled (here or by a map computation)."""
    if st.session_state.pop(state.EVALUATIONS_CANCELLED, None) or st.session_state.pop(state.CANCELLED, None):
        st.info(
            "Cancelled. What had finished is kept; press the button again to go on.",
            icon=":material/stop_circle:",
        )


def run_jobs(pending_key: str, jobs: Sequence[Job]) -> list[Any]:
    """Run metric jobs under one progress bar with a Cancel button (see ui.widgets.progress).

    Jobs with a key run as engine jobs the page only polls, so leaving the page (or Cancel's rerun) stops
    the polling, not the work; coming back to the same evaluation attaches to it. Their work stores its
    entry in this session's state, so the worker thread carries this script's context (the session, not
    the run: it outlives a page switch), and the jobs are this session's own (keyed with its watcher id):
    another tab computes its own evaluation."""
    if not jobs or any(job.key is None for job in jobs):
        return _run_jobs(pending_key, jobs, state.EVALUATIONS_CANCELLED)
    context = _worker_context()
    if context is None:
        return _run_jobs(pending_key, jobs, state.EVALUATIONS_CANCELLED)
    me = results.watcher()
    started = [
        (
            job.label,
            sc.submit_job(
                ("evaluate", me, job.key), _in_background(job, context), label=job.label, watcher=me
            ),
        )
        for job in jobs
    ]
    return watch_jobs(pending_key, started, state.EVALUATIONS_CANCELLED, me)


def _worker_context() -> Any:
    """This script's context for a worker thread: the same session state (and its lock), without the
    check that stops a script run (a worker must not stop when the page it started on is left).

    Streamlit's session state raises StopException from a stopped run's context at every access; its
    internals are used here because no public API hands a thread the session alone. None if they change."""
    context = get_script_run_ctx()
    safe = getattr(context, "session_state", None)
    if context is None or not isinstance(safe, SafeSessionState):
        return None
    try:
        detached = SafeSessionState(object.__getattribute__(safe, "_state"), lambda: None)
        object.__setattr__(detached, "_lock", object.__getattribute__(safe, "_lock"))
        return dataclasses.replace(context, session_state=detached)
    except (AttributeError, TypeError):
        return None


def _in_background(job: Job, context: Any) -> Callable[[ProgressFn, threading.Event], Any]:
    def work(progress: ProgressFn, cancel: threading.Event) -> Any:
        add_script_run_ctx(threading.current_thread(), context)

        def report(fraction: float, message: str) -> None:
            if cancel.is_set():  # the metrics stop at their next progress report
                raise sc.Cancelled("Cancelled.")
            progress(fraction, message)

        return job.work(report)

    return work


def map_for(view: View, variant: Variant, progress: ProgressFn) -> results.Result:
    """The variant's map: from the session's results, else computed (and stored there, as on Explore)."""
    found = results.lookup(view, variant.info, variant.params)
    return found if found is not None else results.compute(view, variant.info, variant.params, progress)
