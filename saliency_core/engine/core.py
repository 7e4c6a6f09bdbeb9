"""The Engine: one per process, composing model loading, cost estimates and the shared cache, and
running methods with a per-model lock so each need is computed once and shared between methods."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from ..cache import CacheStats, LRUCache, nbytes
from ..device import default_cache_bytes, describe, pick_device
from ..errors import InvalidParameter
from ..methods.base import get_method
from ..methods.context import CancelFn, ProgressFn
from ..models.loaded import LoadedModel
from ..targets import ClassTarget, Target, as_target
from . import inputs
from .context import RunContext
from .cost import CostModel
from .loading import ModelLoader
from .results import Attribution


class Engine(ModelLoader, CostModel):
    """One per process (see `get_engine`): models, caches and per-model locks live here."""

    def __init__(self, device: str | torch.device | None = None, cache_bytes: int | None = None) -> None:
        self.device = pick_device(device)
        self.cache = LRUCache(cache_bytes if cache_bytes is not None else default_cache_bytes(self.device))
        ModelLoader.__init__(self)
        CostModel.__init__(self)
        self.forward_count = 0  # images through any model: shows that a cached need made no pass

    def describe_device(self) -> str:
        return describe(self.device)

    # --- needs shared by every method -----------------------------------------------------
    def forward(self, model: LoadedModel | nn.Module, x: torch.Tensor, x_key: str | None = None) -> Any:
        """The model output for x without gradients; cached."""
        return self.forward_cached(self.resolve(model), x, x_key)[0]

    def forward_cached(
        self, model: LoadedModel, x: torch.Tensor, x_key: str | None = None, fresh: bool = False
    ) -> tuple[Any, bool]:
        """(output, whether a pass was made); `fresh` recomputes even when the output is cached."""
        x = self.check_input(model, x)
        key = ("need", "forward", model.key, x_key or inputs.image_digest(x))
        found = None if fresh else self.cache.get(key)
        if found is not None:
            return found, False
        with model.lock, torch.no_grad():
            start = time.perf_counter()
            found = inputs.detach(model.forward(x))
            self.record_speed(model, "forward", time.perf_counter() - start, len(x))
        self.forward_count += 1
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
        use_cache: bool = True,
        **params: Any,
    ) -> Attribution:
        """Compute (or fetch from the cache) one saliency map; see `saliency_core.attribute`."""
        started = time.perf_counter()
        model = self.resolve(model)
        spec = get_method(method)
        if model.task not in spec.tasks:
            raise InvalidParameter(f"{spec.title} does not apply to {model.task} models.")
        x = self.check_input(model, x)
        resolved = spec.resolve(params, model.layers())
        x_key = inputs.image_digest(x)
        with model.lock:
            ctx = RunContext(self, model, x, x_key, None, resolved, progress, cancel)
            ctx.fresh = not use_cache
            target = self.resolve_target(model, target, ctx.output) if spec.needs_target else None
            ctx.target = target
            result_key = (
                "result",
                model.key,
                x_key,
                method,
                inputs.params_key(resolved),
                target.key() if target else None,
            )
            if use_cache:
                hit = self.cache.get(result_key)
                if hit is not None:
                    # The default target may have cost a forward pass even on a hit: report it.
                    return replace(
                        hit,
                        cached=True,
                        forward_passes=ctx.forward_passes,
                        backward_passes=0,
                        seconds=time.perf_counter() - started,
                        target=target,
                    )
            compute_started = time.perf_counter()
            raw, saliency = spec.compute(ctx)
            elapsed = time.perf_counter() - compute_started
        result = Attribution(
            map=saliency.detach().to("cpu", torch.float32).contiguous(),
            raw=raw.detach().to("cpu", torch.float32).contiguous(),
            method=method,
            params=resolved,
            target=target,
            model_id=model.id,
            forward_passes=ctx.forward_passes,
            backward_passes=ctx.backward_passes,
            seconds=time.perf_counter() - started,
            compute_seconds=elapsed,
            device=str(self.device),
            extras=ctx.extras,
        )
        if use_cache:
            self.cache.put(result_key, result, nbytes(result.map) + nbytes(result.raw))
        return result

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
