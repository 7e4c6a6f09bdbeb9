"""The Engine: one per process, composing model loading, cost estimates and the shared cache, and
running methods with a per-model lock so each need is computed once and shared between methods.

What it hands out is the caller's own (copies of cached maps and outputs); a request over the work limit
is refused before any pass; a request that runs out of accelerator memory is rerun on the CPU."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from ..cache import CacheStats, LRUCache, nbytes
from ..device import (
    default_cache_bytes,
    describe,
    free_memory,
    has_cpu_fallback,
    is_out_of_memory,
    pick_device,
)
from ..errors import InvalidParameter, ResourceLimit
from ..methods.base import MethodSpec, get_method
from ..methods.context import CancelFn, PreviewFn, ProgressFn
from ..models.loaded import LoadedModel
from ..targets import ClassTarget, Target, as_target
from . import inputs, jobs
from .context import RunContext, with_preview
from .cost import CostModel
from .loading import ModelLoader, cpu_copy
from .results import Attribution


class Engine(ModelLoader, CostModel):
    """One per process (see `get_engine`): models, caches and per-model locks live here."""

    def __init__(self, device: str | torch.device | None = None, cache_bytes: int | None = None) -> None:
        self.device = pick_device(device)
        self.cache = LRUCache(cache_bytes if cache_bytes is not None else default_cache_bytes(self.device))
        ModelLoader.__init__(self)
        CostModel.__init__(self)
        self.forward_count = 0  # images through any model: shows that a cached need made no pass
        self.jobs = jobs.JobRegistry()  # long requests as background jobs (see jobs.py)

    def describe_device(self) -> str:
        return describe(self.device)

    # --- needs shared by every method -----------------------------------------------------
    def forward(self, model: LoadedModel | nn.Module, x: torch.Tensor, x_key: str | None = None) -> Any:
        """The model output for x without gradients; cached, and a copy the caller may change."""
        return _copy(self.forward_cached(self.resolve(model), x, x_key)[0])

    def forward_cached(
        self, model: LoadedModel, x: torch.Tensor, x_key: str | None = None, use_cache: bool = True
    ) -> tuple[Any, bool]:
        """(output, whether a pass was made), the cached object itself: for the engine and its methods,
        which never change it. `use_cache=False` neither reads nor writes the cache."""
        x = self.check_input(model, x)
        key = ("need", "forward", model.key, x_key or inputs.image_digest(x))
        found = self.cache.get(key) if use_cache else None
        if found is not None:
            return found, False
        with model.lock:
            start = time.perf_counter()
            with torch.inference_mode():
                out = model.forward(x)
            # Copied out of inference mode: targets bound to the output (a predicted mask, a box) enter
            # gradient passes later, which inference tensors cannot.
            found = _copy(out)
            self.record_speed(model, "forward", time.perf_counter() - start, len(x), tuple(x.shape))
        self.forward_count += 1
        if use_cache:
            self.cache.put(key, found)
        return found, True

    def check_input(self, model: LoadedModel, x: torch.Tensor) -> torch.Tensor:
        """x as [1, C, H, W] float32 on the model's device, with clear errors for anything else."""
        return inputs.check_input(model, x)

    # --- attribution ----------------------------------------------------------------------
    def attribute(
        self,
        model: LoadedModel | nn.Module,
        x: torch.Tensor,
        method: str,
        target: Target | int | None = None,
        *,
        progress: ProgressFn | None = None,
        cancel: CancelFn | threading.Event | None = None,
        preview: PreviewFn | None = None,
        use_cache: bool = True,
        **params: Any,
    ) -> Attribution:
        """Compute (or fetch from the cache) one saliency map; see `saliency_core.attribute`."""
        started = time.perf_counter()
        progress = with_preview(progress, preview)
        model = self.resolve(model)
        spec = get_method(method)
        why_not = spec.unsupported(model)
        if why_not:
            raise InvalidParameter(why_not)
        x = self.check_input(model, x)
        resolved = spec.resolve(params, model.layers())
        self.check_work(model, spec, resolved, x)  # before any pass, the default target's included
        request = (spec, method, x, resolved, progress, cancel, use_cache, started)
        with model.lock:
            try:
                result = self._attribute(model, target, *request)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                where = model.device.type
            else:
                if not result.cached:
                    self.calibrate(model, method, resolved, x, result.compute_seconds)
                return result
            # Out of the except block, so the failed run's tensors (held by the traceback) are freed.
            free_memory(model.device)
            if not has_cpu_fallback(model.device):
                raise _out_of_memory(spec, where)
            return self._attribute_on_cpu(model, target, *request)

    def _attribute(
        self,
        model: LoadedModel,
        target: Target | int | None,
        spec: MethodSpec,
        method: str,
        x: torch.Tensor,
        resolved: dict[str, Any],
        progress: ProgressFn | None,
        cancel: CancelFn | threading.Event | None,
        use_cache: bool,
        started: float,
    ) -> Attribution:
        """One map on `model` (the caller holds its lock)."""
        x_key = inputs.image_digest(x)
        ctx = RunContext(self, model, x, x_key, None, resolved, progress, cancel)
        ctx.use_cache = use_cache
        bound = self.resolve_target(model, target, ctx.output) if spec.needs_target else None
        ctx.target = bound
        key = _result_key(model, x_key, method, resolved, bound)
        if use_cache:
            hit = self.cache.get(key)
            if hit is not None:
                # The default target may have cost a forward pass even on a hit: report it.
                return replace(
                    hit.owned_copy(),
                    cached=True,
                    forward_passes=ctx.forward_passes,
                    backward_passes=0,
                    seconds=time.perf_counter() - started,
                    target=bound,
                )
        compute_started = time.perf_counter()
        raw, saliency = spec.compute(ctx)
        elapsed = time.perf_counter() - compute_started
        result = Attribution(
            # Copies: a method may return a cached need itself (the input gradient), which must stay intact.
            map=saliency.detach().to("cpu", torch.float32, copy=True).contiguous(),
            raw=raw.detach().to("cpu", torch.float32, copy=True).contiguous(),
            method=method,
            params=resolved,
            target=bound,
            model_id=model.id,
            forward_passes=ctx.forward_passes,
            backward_passes=ctx.backward_passes,
            seconds=time.perf_counter() - started,
            compute_seconds=elapsed,
            device=str(model.device),
            extras=ctx.extras,
            notes=tuple(ctx.notes),
        )
        if use_cache:
            self.cache.put(key, result.owned_copy(), nbytes(result.map) + nbytes(result.raw))
        return result

    def _attribute_on_cpu(
        self,
        model: LoadedModel,
        target: Target | int | None,
        spec: MethodSpec,
        method: str,
        x: torch.Tensor,
        resolved: dict[str, Any],
        progress: ProgressFn | None,
        cancel: CancelFn | threading.Event | None,
        use_cache: bool,
        started: float,
    ) -> Attribution:
        """The request again on a CPU copy of the model, after the accelerator ran out of memory."""
        where = model.device.type
        try:
            on_cpu = cpu_copy(model)
            cpu_x = x.detach().to("cpu")
            # Nothing of the one-off copy goes into the cache: its needs would never be asked for again.
            result = self._attribute(
                on_cpu, target, spec, method, cpu_x, resolved, progress, cancel, False, started
            )
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
        else:
            note = f"{where.upper()} ran out of memory, so this map was computed on the CPU (slower)."
            result = replace(result, model_id=model.id, notes=(*result.notes, note))
            if use_cache:
                key = _result_key(model, inputs.image_digest(x), method, resolved, result.target)
                self.cache.put(key, result.owned_copy(), nbytes(result.map) + nbytes(result.raw))
            return result
        raise _out_of_memory(spec, f"{where} and then on the CPU")

    # --- background jobs (jobs.py): a request keeps running when its caller stops waiting -----------
    def submit(
        self,
        model: LoadedModel | nn.Module,
        x: torch.Tensor,
        method: str,
        target: Target | int | None = None,
        *,
        watcher: Any = None,
        **params: Any,
    ) -> jobs.Job:
        """`attribute` as a background job: attaches to this request's running job, or a done one when
        the map is cached; `watcher` (e.g. a session id) is counted for `Job.cancel(watcher)`."""
        return jobs.submit(self, model, x, method, target, params, watcher)

    def lookup(
        self,
        model: LoadedModel | nn.Module,
        x: torch.Tensor,
        method: str,
        target: Target | int | None = None,
        **params: Any,
    ) -> Attribution | None:
        """The cached map of this request, or None; never runs the model."""
        return jobs.lookup(self, model, x, method, target, params)

    def find_job(
        self,
        model: LoadedModel | nn.Module,
        x: torch.Tensor,
        method: str,
        target: Target | int | None = None,
        **params: Any,
    ) -> jobs.Job | None:
        """This request's live (or recently finished) job, or None; never runs the model."""
        return jobs.find(self, model, x, method, target, params)

    def resolve_target(
        self, model: LoadedModel, target: Target | int | None, output: Callable[[], Any]
    ) -> Target:
        """The target to explain: the given one (a bare int becomes a named class), else the top
        prediction; bound to the unperturbed `output()` where the task takes a region from it."""
        found = as_target(target)
        if found is not None and not isinstance(found, model.adapter.target_types):
            expected = " or ".join(t.__name__ for t in model.adapter.target_types)
            raise InvalidParameter(
                f"A {model.task} model explains a {expected}, not a {type(found).__name__}: "
                "pick one of the model's predictions as the target."
            )
        if found is None:
            predictions = model.adapter.predict(model, output(), 1, 0.0)
            if not predictions:
                raise InvalidParameter(
                    "The model predicts nothing on this image, so there is no default target."
                )
            found = predictions[0]
        if isinstance(found, ClassTarget) and not found.label and found.index < len(model.categories):
            found = replace(found, label=model.categories[found.index])
        return found.bind(output()) if model.adapter.binds_targets else found

    def stats(self) -> dict[str, Any]:
        """Device, cache occupancy, loaded models and measured speeds, for the UI's engine panel."""
        cache: CacheStats = self.cache.stats()
        return {
            "device": self.describe_device(),
            "cache": cache,
            "models": [repr(m) for m in self.loaded_models()],
            "speed": dict(self._speed),
        }


def _result_key(
    model: LoadedModel, x_key: str, method: str, resolved: dict[str, Any], target: Target | None
) -> tuple:
    return ("result", model.key, x_key, method, inputs.params_key(resolved), target.key() if target else None)


def _out_of_memory(spec: MethodSpec, where: str) -> ResourceLimit:
    return ResourceLimit(
        f"{spec.title} ran out of memory on {where}, even one image at a time. Use a smaller image, fewer "
        "samples or steps, or a smaller model; the server is otherwise unaffected.",
        limit="memory",
    )


def _copy(value: Any) -> Any:
    """A model output with every tensor copied (dicts, lists and tuples of them too)."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(v) for v in value)
    return value
