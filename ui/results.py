"""Computed maps: a per-session store (a ui.store.SessionStore) keyed by (image, model, target, method,
params), and running methods with a progress bar and a cancel button (ui.widgets.progress).

Display settings are not part of the key, so changing them never recomputes a map. Maps are computed by
background jobs of the engine, keyed by their request: the script only polls them, so leaving the page (or
Cancel, which reruns the script) stops the polling, not the work; opening the view again, or in a second
tab, attaches to the running job, and a finished map lands in the engine's cache for any session.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import streamlit as st

import saliency_core as sc
from saliency_core import card, viz
from saliency_core.methods.context import ProgressFn
from ui import state, tasks
from ui.store import SessionStore, session_store
from ui.text import md
from ui.view import View
from ui.widgets.progress import POLL_SECONDS, PreviewDraw, watch_jobs

MAX_RESULTS = 64  # per session; about 200 kB each at 224x224


@dataclass(frozen=True, eq=False)
class Result:
    """One computed map and how it was made."""

    method: str
    title: str
    family: str
    params: dict[str, Any]  # as the engine resolved them
    map: np.ndarray  # [H, W] float32, signed, unnormalised, at the input's resolution
    raw_shape: tuple[int, ...]
    target_label: str
    target_index: int | None
    seconds: float
    compute_seconds: float
    engine_cached: bool
    forward_passes: int
    backward_passes: int
    device: str
    extras: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # the engine's sentences on how the map was made
    created: float = field(default_factory=time.time)

    @property
    def seed(self) -> int | None:
        return self.params.get("seed")

    @property
    def mode(self) -> str:
        """How a method with modes made this map ("exact, incremental", "adaptive (approximate): 88 of
        625 windows", "progressive"), from what it recorded; "" for methods without modes."""
        return card.mode_text(self.extras)

    @property
    def nbytes(self) -> int:
        return int(self.map.nbytes)


def params_key(params: dict[str, Any]) -> tuple:
    # batch_size changes how work is split, not the map (the engine ignores it too).
    return tuple(sorted((k, v) for k, v in params.items() if k != "batch_size"))


MAX_REQUESTS = 32  # request keys remembered per session with what they ask for (see `should_run`)


def request_key(view: View, info: sc.MethodInfo, params: dict[str, Any]) -> tuple:
    """The key of a map in the session's store; remembered with its request, so that `should_run` can ask
    the engine whether that map is cached or being computed."""
    target = view.target_key() if info.needs_target else ()
    key = (*view.base_key(), target, info.id, params_key(params))
    known = st.session_state.setdefault(state.REQUESTS, {})
    known.pop(key, None)
    known[key] = (view, info, dict(params))
    while len(known) > MAX_REQUESTS:
        known.pop(next(iter(known)))
    return key


def store() -> SessionStore[Result]:
    """The session's maps, least recently used dropped first."""
    return session_store(state.RESULTS, MAX_RESULTS)


def lookup(view: View, info: sc.MethodInfo, params: dict[str, Any]) -> Result | None:
    return store().get(request_key(view, info, params))


def compute(
    view: View,
    info: sc.MethodInfo,
    params: dict[str, Any],
    progress: ProgressFn | None = None,
) -> Result:
    """Run a method on the view as an engine job (attaching to a running one; the engine may answer from
    its cache), wait for it here forwarding its progress, and store the result."""
    job = submit(view, info, params)
    while not job.wait(POLL_SECONDS):
        if progress is not None:  # a Streamlit call: where a left page stops waiting (the job runs on)
            snap = job.progress
            progress(snap.fraction, snap.message)
    return keep(view, info, params, job.result())


def watcher() -> str:
    """This session's id as a watcher of the engine's jobs."""
    if state.JOB_WATCHER not in st.session_state:
        st.session_state[state.JOB_WATCHER] = uuid.uuid4().hex
    return st.session_state[state.JOB_WATCHER]


def submit(view: View, info: sc.MethodInfo, params: dict[str, Any]) -> sc.Job:
    """The engine's job for this map (running, done from the cache, or new), watched by this session."""
    target = view.target if info.needs_target else None
    if info.needs_target and target is None:  # never let the engine pick a default target instead
        raise sc.TargetNotFound(view.missing_target())
    return sc.submit(view.model, view.x, info.id, target, watcher=watcher(), **params)


def keep(view: View, info: sc.MethodInfo, params: dict[str, Any], attribution: sc.Attribution) -> Result:
    """Store a finished map in the session's store."""
    state.bump(state.COMPUTE_COUNT)
    result = Result(
        method=info.id,
        title=info.title,
        family=info.family,
        params=dict(attribution.params),
        map=viz.as_map(attribution.map),
        raw_shape=tuple(attribution.raw.shape),
        target_label=view.target_label if info.needs_target else card.IGNORED_TARGET,
        target_index=view.target_index if info.needs_target else None,
        seconds=float(attribution.seconds),
        compute_seconds=float(attribution.compute_seconds),
        engine_cached=bool(attribution.cached),
        forward_passes=int(attribution.forward_passes),
        backward_passes=int(attribution.backward_passes),
        device=str(attribution.device),
        extras={k: v for k, v in attribution.extras.items() if isinstance(v, (int, float, str, bool))},
        notes=tuple(attribution.notes),
    )
    store().put(request_key(view, info, params), result)
    return result


def describe_params(params: dict[str, Any]) -> str:
    shown = {k: v for k, v in params.items() if k not in ("batch_size",)}
    return ", ".join(f"{k}={v}" for k, v in shown.items())


def estimate_text(view: View, info: sc.MethodInfo, params: dict[str, Any]) -> tuple[str, float | None]:
    """'12 forward + 12 backward passes, about 3 s' (', from a probe' while only the engine's probe has
    measured this model at this size) and the seconds (None only when the estimate failed)."""
    try:
        est = sc.estimate(view.model, info.id, params, view.x)
    except sc.SaliencyError as exc:
        return f"cost unknown ({exc})", None
    passes = f"{est.forward_passes} forward + {est.backward_passes} backward passes"
    if est.forward_passes == 0 and est.backward_passes == 0:
        passes = "no model passes"
    if est.seconds is None:  # the model failed on the probe input: its run will say why
        return f"{passes} (time unknown: the model could not be timed)", None
    source = ", from a probe" if est.from_probe else ""
    return f"{passes}, about {format_seconds(est.seconds)}{source}", float(est.seconds)


SLOW_SECONDS = 60.0  # estimates above this get a warning before running
SLOW_PASSES = 300  # and so do this many passes while the model's speed is unknown


def cost_warning(view: View, info: sc.MethodInfo, params: dict[str, Any]) -> str:
    """A plain warning when a method will be slow on this model and input ("" otherwise)."""
    try:
        est = sc.estimate(view.model, info.id, params, view.x)
    except sc.SaliencyError:
        return ""
    passes = est.forward_passes + est.backward_passes
    slow = est.seconds > SLOW_SECONDS if est.seconds is not None else passes > SLOW_PASSES
    if not slow:
        return ""
    when = f"about {format_seconds(est.seconds)}" if est.seconds is not None else f"{passes} passes"
    what = tasks.get(view.task).slow_what
    hint = info.slow_hint(params, est.forward_passes, when, what)
    return hint or f"{info.title} will take {when} on {what}. Fewer samples, masks or windows make it faster."


def is_cheap(view: View, info: sc.MethodInfo, params: dict[str, Any], max_seconds: float) -> bool:
    """Whether a method may run without a click: estimated (from measured or probed speeds) under
    `max_seconds`; a method whose time could not be estimated waits for a click."""
    try:
        est = sc.estimate(view.model, info.id, params, view.x)
    except sc.SaliencyError:
        return False
    return est.seconds is not None and est.seconds <= max_seconds


def format_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 90:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


# --- running with progress and cancel ---------------------------------------------------------------------
# A run the user asked for is remembered under `pending_key` until it finishes, so a rerun in between (the
# user moved a slider) resumes it. Cancel clears it and remembers the cancelled key under
# `<pending_key>.cancelled`, so a fast method that would run by itself does not simply start again.


def request(pending_key: str, key: Any) -> None:
    """on_click of a Run button: ask for `key` to be computed."""
    st.session_state[pending_key] = key
    st.session_state.pop(state.cancelled_run(pending_key), None)


def should_run(pending_key: str, key: Any, auto: bool) -> bool:
    """Whether to compute `key` (a request key, or a tuple of them) now: asked for; cheap enough to run by
    itself and not just cancelled; or every map of it is cached in the engine (a share link to a slow view)
    or being computed by an engine job this session did not cancel (a page left and opened again, a second
    tab), which the run then attaches to."""
    if st.session_state.get(pending_key) == key:
        return True
    cancelled = st.session_state.get(state.cancelled_run(pending_key)) == key
    if auto and not cancelled:
        return True
    requests = _requests(key)
    return bool(requests) and all(_in_engine(request, cancelled) for request in requests)


def _requests(key: Any) -> list[tuple[View, sc.MethodInfo, dict[str, Any]]]:
    """What `key` asks for (one request key or a tuple of them), as remembered by `request_key`; [] if
    any part is unknown."""
    known = st.session_state.get(state.REQUESTS, {})
    if key in known:
        return [known[key]]
    if isinstance(key, tuple) and key and all(isinstance(k, tuple) and k in known for k in key):
        return [known[k] for k in key]
    return []


def _in_engine(request: tuple[View, sc.MethodInfo, dict[str, Any]], cancelled: bool) -> bool:
    """Whether the engine has this map (stored here, cached there, or a live job not cancelled here)."""
    view, info, params = request
    if lookup(view, info, params) is not None:
        return True
    target = view.target if info.needs_target else None
    if info.needs_target and target is None:
        return False
    if sc.cached_attribution(view.model, view.x, info.id, target, **params) is not None:
        return True
    job = sc.find_job(view.model, view.x, info.id, target, **params)
    return not cancelled and job is not None and not job.done and not job.cancel_requested


def run_with_progress(
    view: View,
    jobs: Sequence[
        tuple[str, sc.MethodInfo, dict[str, Any]] | tuple[str, sc.MethodInfo, dict[str, Any], View]
    ],
    pending_key: str,
    draw_preview: PreviewDraw | None = None,
) -> list[Result | None]:
    """Compute (label, method, params[, view]) jobs as engine jobs under one progress bar with a Cancel
    button; a job's own view (another target, in Compare) replaces `view` for it. `draw_preview` shows a
    progressive method's partial map while it refines.

    All missing maps are submitted at once (the engine runs them one after another on the model), so they
    are all computed even when the page is left; a map whose job runs already is attached to. Returns each
    job's result, or None where it failed (the message is shown). Stored results are reused.
    """
    views = [job[3] if len(job) > 3 else view for job in jobs]
    results: list[Result | None] = [lookup(v, job[1], job[2]) for v, job in zip(views, jobs)]
    todo = [i for i, found in enumerate(results) if found is None]
    if not todo:
        st.session_state[pending_key] = None
        return results
    # While running, the pending key names this run (also when it started by itself) for Cancel to find.
    st.session_state[pending_key] = st.session_state.get(pending_key) or tuple(
        request_key(views[i], jobs[i][1], jobs[i][2]) for i in todo
    )
    started: list[tuple[int, sc.Job]] = []
    for i in todo:
        try:
            started.append((i, submit(views[i], jobs[i][1], jobs[i][2])))
        except sc.SaliencyError as exc:  # refused before any work (a limit, a parameter, no target)
            st.error(f"**{md(jobs[i][0])}**: {md(exc, limit=None)}", icon=":material/error:")
    labelled = [(jobs[i][0], job) for i, job in started]
    done = watch_jobs(pending_key, labelled, state.CANCELLED, watcher(), draw_preview)
    for (i, _), attribution in zip(started, done):
        if attribution is not None:
            results[i] = keep(views[i], jobs[i][1], jobs[i][2], attribution)
    st.session_state[pending_key] = None
    return results


def show_cancelled() -> None:
    """Say once that the last run was cancelled."""
    if st.session_state.pop(state.CANCELLED, None):
        st.info("Cancelled. Nothing was stored; press Run to start again.", icon=":material/stop_circle:")
