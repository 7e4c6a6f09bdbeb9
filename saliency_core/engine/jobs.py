"""Saliency maps as background jobs of the engine (the generic machinery: job.py): a request's job is
keyed by what it computes, so the same request attaches to the running job, and a cached one is done."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ..errors import SaliencyError
from ..methods.base import MethodSpec, get_method
from ..methods.context import ProgressFn
from ..models.loaded import LoadedModel
from ..targets import Target, as_target
from . import inputs
from .job import CANCELLED, DONE, FAILED, FINISHED, QUEUED, RUNNING, Job, JobRegistry, Progress, Work
from .results import Attribution

if TYPE_CHECKING:
    from torch import nn

    from .core import Engine

__all__ = [
    "CANCELLED",
    "DONE",
    "FAILED",
    "FINISHED",
    "QUEUED",
    "RUNNING",
    "Job",
    "JobRegistry",
    "Progress",
    "Work",
    "find",
    "job_key",
    "lookup",
    "submit",
]


@dataclass(frozen=True)
class _Request:
    model: LoadedModel
    spec: MethodSpec
    x: torch.Tensor
    x_key: str
    resolved: dict[str, Any]
    target_key: tuple | None  # the given (or default) target's identity; None for target-free methods


class _NeedsPass(Exception):
    """The default target (or a bound one) needs a forward pass that is not cached."""


def _request(
    engine: Engine,
    model: LoadedModel | nn.Module,
    x: torch.Tensor,
    method: str,
    target: Target | int | None,
    params: dict[str, Any],
    passes: bool,
) -> _Request:
    """The request's identity; `passes=False` raises _NeedsPass rather than run the model."""
    from ..errors import InvalidParameter

    model = engine.resolve(model)
    spec = get_method(method)
    why_not = spec.unsupported(model)
    if why_not:
        raise InvalidParameter(why_not)
    x = engine.check_input(model, x)
    resolved = spec.resolve(params, model.layers())
    x_key = inputs.image_digest(x)
    target_key = None
    if spec.needs_target:
        given = as_target(target)
        if given is None:  # the default target: its identity is the top prediction's
            given = engine.resolve_target(model, None, _output(engine, model, x, x_key, passes))
        target_key = given.key()
    return _Request(model, spec, x, x_key, resolved, target_key)


def _output(
    engine: Engine, model: LoadedModel, x: torch.Tensor, x_key: str, passes: bool
) -> Callable[[], Any]:
    def output() -> Any:
        if passes:
            return engine.forward_cached(model, x, x_key)[0]
        found = engine.cache.get(("need", "forward", model.key, x_key))
        if found is None:
            raise _NeedsPass
        return found

    return output


def job_key(request: _Request) -> tuple:
    return (
        "attribution",
        request.model.key,
        request.x_key,
        request.spec.id,
        inputs.params_key(request.resolved),
        request.target_key,
    )


def lookup(
    engine: Engine,
    model: LoadedModel | nn.Module,
    x: torch.Tensor,
    method: str,
    target: Target | int | None,
    params: dict[str, Any],
) -> Attribution | None:
    """The cached map of this request (the caller's own copy), or None; never runs the model."""
    from dataclasses import replace

    from .core import _result_key

    try:
        req = _request(engine, model, x, method, target, params, passes=False)
        bound = None
        if req.spec.needs_target:
            output = _output(engine, req.model, req.x, req.x_key, passes=False)
            bound = engine.resolve_target(req.model, target, output)
    except (_NeedsPass, SaliencyError):
        return None
    hit = engine.cache.get(_result_key(req.model, req.x_key, req.spec.id, req.resolved, bound))
    if hit is None:
        return None
    return replace(
        hit.owned_copy(), cached=True, forward_passes=0, backward_passes=0, seconds=0.0, target=bound
    )


def submit(
    engine: Engine,
    model: LoadedModel | nn.Module,
    x: torch.Tensor,
    method: str,
    target: Target | int | None,
    params: dict[str, Any],
    watcher: Hashable | None = None,
) -> Job:
    """The job computing this map: a done one when it is cached, the running one when there is one, else
    a new one. Bad requests (parameters, target, work limit) raise here, before any job starts."""
    req = _request(engine, model, x, method, target, params, passes=True)
    engine.check_work(req.model, req.spec, req.resolved, req.x)
    key = job_key(req)
    cached = lookup(engine, req.model, req.x, method, target, params)
    if cached is not None:
        return Job.finished(key, cached, req.spec.title, Attribution.owned_copy)
    x_own = req.x.detach().clone()  # the caller may change its tensor while the job runs
    given = dict(params)

    def work(progress: ProgressFn, cancel: threading.Event) -> Attribution:
        return engine.attribute(req.model, x_own, method, target, progress=progress, cancel=cancel, **given)

    return engine.jobs.submit(
        key, work, label=req.spec.title, group=req.model.key, watcher=watcher, copy=Attribution.owned_copy
    )


def find(
    engine: Engine,
    model: LoadedModel | nn.Module,
    x: torch.Tensor,
    method: str,
    target: Target | int | None,
    params: dict[str, Any],
) -> Job | None:
    """The live or recently finished job of this request, or None; never runs the model."""
    try:
        req = _request(engine, model, x, method, target, params, passes=False)
    except (_NeedsPass, SaliencyError):
        return None
    return engine.jobs.find(job_key(req))
