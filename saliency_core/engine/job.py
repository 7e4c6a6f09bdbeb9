"""Background jobs owned by the engine: long work keyed by its request, run in a worker thread
(saliency maps as jobs: jobs.py).

A job outlives whoever asked for it: a dashboard page that is left, or a notebook cell that stops waiting,
stops only its *polling*; the job runs to completion and (for a saliency map) its result lands in the
engine's cache. Asking again for a request whose job is running attaches to that job (one computation,
one progress), and a request whose result is cached gets a finished job at once.

Jobs count their watchers (e.g. one per dashboard session): `cancel(watcher)` detaches that watcher and
stops the job only when nobody else watches it, so one user's Cancel never kills another's identical run.
The registry is bounded: finished jobs are kept `keep_seconds` and at most `max_finished` of them, and at
most `max_per_group` live jobs wait on one model (its lock runs them one at a time anyway).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import Cancelled, ResourceLimit
from ..methods.context import ProgressFn
from .context import Reporter

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)

# What a generic job runs: work(progress, cancel) -> value; it reports with progress(fraction, message)
# and stops (raising sc.Cancelled, or returning early) once the cancel event is set.
Work = Callable[[ProgressFn, threading.Event], Any]


@dataclass(frozen=True)
class Progress:
    """A snapshot of a job: `fraction` in [0, 1], the last message, its state and timing."""

    fraction: float
    message: str
    state: str  # queued | running | done | failed | cancelled
    started: float  # time.time() when the job was submitted
    elapsed: float  # seconds since then (until it finished, for a finished job)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


class Job:
    """One piece of work in a worker thread (see the module docstring); thread-safe."""

    def __init__(
        self, key: Hashable, label: str = "", group: Hashable = None, copy: Callable[[Any], Any] | None = None
    ) -> None:
        self.key = key
        self.label = label
        self.group = group
        self._copy = copy  # how result() hands out a value each caller owns
        self._lock = threading.Lock()
        self._state = QUEUED
        self._fraction = 0.0
        self._message = "waiting for the model"
        self.started = time.time()
        self._finished_at: float | None = None
        self._value: Any = None
        self._error: BaseException | None = None
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._watchers: set[Hashable] = set()
        self._preview: tuple[np.ndarray, str] | None = None

    @classmethod
    def finished(
        cls, key: Hashable, value: Any, label: str = "", copy: Callable[[Any], Any] | None = None
    ) -> Job:
        """A job already done with `value` (a cached result)."""
        job = cls(key, label, None, copy)
        job._finish(DONE, value, None, "cached")
        return job

    # --- reading -------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    @property
    def done(self) -> bool:
        """Whether the job has finished (done, failed or cancelled)."""
        return self._done.is_set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    @property
    def watchers(self) -> frozenset:
        with self._lock:
            return frozenset(self._watchers)

    @property
    def progress(self) -> Progress:
        with self._lock:
            end = self._finished_at if self._finished_at is not None else time.time()
            return Progress(self._fraction, self._message, self._state, self.started, end - self.started)

    @property
    def preview(self) -> tuple[np.ndarray, str] | None:
        """The latest partial map [H, W] (float32, the caller's own) and what produced it, while a
        progressive method refines; None before the first one, and once the job has finished."""
        with self._lock:
            if self._preview is None or self._state in FINISHED:
                return None
            return self._preview[0].copy(), self._preview[1]

    @property
    def error(self) -> BaseException | None:
        return self._error

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job finishes or `timeout` seconds pass; whether it has finished."""
        return self._done.wait(timeout)

    def result(self, timeout: float | None = None) -> Any:
        """The value (a copy the caller owns, for a saliency map); raises the job's error, sc.Cancelled
        for a cancelled job, or TimeoutError when it is still running after `timeout` seconds."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"{self.label or 'The job'} is still running.")
        if self._state == CANCELLED:
            raise Cancelled("Cancelled.")
        if self._error is not None:
            raise self._error
        return self._copy(self._value) if self._copy is not None else self._value

    # --- watching and cancelling ---------------------------------------------------------------
    def watch(self, watcher: Hashable | None) -> Job:
        """Count `watcher` (e.g. a session id) as waiting for this job; None counts nobody."""
        if watcher is not None:
            with self._lock:
                self._watchers.add(watcher)
        return self

    def cancel(self, watcher: Hashable | None = None) -> bool:
        """Detach `watcher`; stop the job when nobody else watches it (always, for watcher None).

        Returns whether the job was asked to stop."""
        with self._lock:
            if watcher is not None:
                self._watchers.discard(watcher)
                if self._watchers:
                    return False  # someone else still waits for it: let it run
            if self._state in FINISHED:
                return False
            self._cancel.set()
            return True

    # --- the worker side -----------------------------------------------------------------------
    def _report(self, fraction: float, message: str) -> None:
        with self._lock:
            if self._state == QUEUED:
                self._state = RUNNING
            self._fraction = min(max(float(fraction), 0.0), 1.0)
            self._message = message or self._message

    def _set_preview(self, saliency: torch.Tensor, label: str) -> None:
        with self._lock:
            self._preview = (saliency.numpy(), label)

    def _finish(self, state: str, value: Any, error: BaseException | None, message: str) -> None:
        with self._lock:
            self._state = state
            self._value = value
            self._error = error
            self._message = message
            if state == DONE:
                self._fraction = 1.0
            self._finished_at = time.time()
            self._preview = None
        self._done.set()

    def _run(self, work: Work) -> None:
        try:
            if self._cancel.is_set():
                raise Cancelled("Cancelled.")
            value = work(Reporter(self._report, self._set_preview), self._cancel)
        except Cancelled:
            self._finish(CANCELLED, None, None, "cancelled")
        except BaseException as exc:  # kept for result(): whoever waits sees the real error
            self._finish(FAILED, None, exc, str(exc) or type(exc).__name__)
        else:
            if self._cancel.is_set() and value is None:
                self._finish(CANCELLED, None, None, "cancelled")
            else:
                self._finish(DONE, value, None, "done")

    def __repr__(self) -> str:
        p = self.progress
        return f"Job({self.label or self.key!r}, {p.state}, {p.fraction:.0%}, watchers={len(self._watchers)})"


class JobRegistry:
    """The engine's jobs by key: submitting a running (or recently finished) key attaches to its job."""

    def __init__(self, keep_seconds: float = 600.0, max_finished: int = 32, max_per_group: int = 16) -> None:
        self.keep_seconds = keep_seconds
        self.max_finished = max_finished
        self.max_per_group = max_per_group
        self._jobs: dict[Hashable, Job] = {}
        self._lock = threading.Lock()

    def submit(
        self,
        key: Hashable,
        work: Work,
        *,
        label: str = "",
        group: Hashable = None,
        watcher: Hashable | None = None,
        copy: Callable[[Any], Any] | None = None,
    ) -> Job:
        """The job for `key`: the live (or recently done) one, else a new one running `work` in a daemon
        thread. Raises ResourceLimit when `group` (a model) already has `max_per_group` live jobs."""
        with self._lock:
            self._prune()
            job = self._jobs.get(key)
            if job is not None and _reusable(job):
                return job.watch(watcher)
            live = sum(1 for j in self._jobs.values() if j.group == group and not j.done)
            if group is not None and live >= self.max_per_group:
                raise ResourceLimit(
                    f"{live} computations are already waiting for this model; wait for them or cancel "
                    "one, then try again.",
                    limit="jobs",
                )
            job = Job(key, label, group, copy).watch(watcher)
            self._jobs[key] = job
        name = f"saliency job: {label}" if label else "saliency job"
        threading.Thread(target=job._run, args=(work,), name=name, daemon=True).start()
        return job

    def find(self, key: Hashable) -> Job | None:
        """The job for `key` if one is live or finished recently (cancelled and failed ones too)."""
        with self._lock:
            self._prune()
            return self._jobs.get(key)

    def jobs(self) -> list[Job]:
        """Every job held now, oldest first."""
        with self._lock:
            self._prune()
            return list(self._jobs.values())

    def _prune(self) -> None:
        now = time.time()
        finished = [(k, j) for k, j in self._jobs.items() if j.done]
        for key, job in finished:
            if now - (job._finished_at or now) > self.keep_seconds:
                del self._jobs[key]
        finished = [(k, j) for k, j in self._jobs.items() if j.done]
        for key, _ in finished[: max(0, len(finished) - self.max_finished)]:
            del self._jobs[key]


def _reusable(job: Job) -> bool:
    """Whether a new request may attach to `job`: live and not being cancelled, or done."""
    if job.done:
        return job.state == DONE
    return not job.cancel_requested
