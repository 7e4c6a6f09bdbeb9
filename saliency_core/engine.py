"""The shared engine: loads models once, serialises work per model, computes each need once.

Needs (a forward output, layer activations and gradients, input gradients) are cached per
(model, image, target, layer), so switching between methods that share them costs no model pass.
"""

from __future__ import annotations

import hashlib
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from .cache import CacheStats, LRUCache, nbytes
from .device import default_cache_bytes, describe, pick_device
from .errors import Cancelled, InvalidParameter, UnknownModel, WeightsUnavailable
from .hooks import capture_layers, guided_relus
from .methods.base import CostInfo, get_method
from .methods.context import CancelFn, ProgressFn
from .models.loaded import LoadedModel, module_token
from .models.registry import get_spec
from .models.weights import load_into, read_state_dict
from .targets import ClassTarget, Target, as_target


@dataclass(frozen=True)
class Attribution:
    """One saliency map: `map` [H, W] signed and unnormalised on the CPU; `raw` the method's native output."""

    map: torch.Tensor
    raw: torch.Tensor
    method: str
    params: dict[str, Any]
    target: Target | None
    model_id: str
    forward_passes: int
    backward_passes: int
    seconds: float
    compute_seconds: float
    cached: bool = False
    device: str = "cpu"
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Estimate:
    """Passes a method will make (images through the model) and, once speed is known, seconds."""

    forward_passes: int
    backward_passes: int
    seconds: float | None


def image_digest(x: torch.Tensor) -> str:
    """Content hash of an input tensor."""
    data = x.detach().to("cpu", torch.float32).contiguous().numpy()
    return hashlib.blake2b(data.tobytes() + str(tuple(data.shape)).encode(), digest_size=16).hexdigest()


def should_cancel(cancel: CancelFn | threading.Event | None) -> bool:
    """Whether a cancel callback or event asks to stop."""
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


class RunContext:
    """What a method sees: the input, the bound target, its parameters, and the shared needs."""

    def __init__(
        self,
        engine: Engine,
        model: LoadedModel,
        x: torch.Tensor,
        x_key: str,
        target: Target | None,
        params: dict[str, Any],
        progress: ProgressFn | None,
        cancel: CancelFn | threading.Event | None,
    ) -> None:
        self.engine = engine
        self.model = model
        self.x = x
        self.x_key = x_key
        self.target = target
        self.params = params
        self._progress = progress
        self._cancel = cancel
        self.forward_passes = 0
        self.backward_passes = 0
        self.extras: dict[str, Any] = {}
        self.fresh = False  # True: recompute every need instead of reading the cache

    # --- bookkeeping -----------------------------------------------------------------------
    def step(self, done: int, total: int, message: str = "") -> None:
        """Report progress and stop with Cancelled when asked to."""
        if should_cancel(self._cancel):
            raise Cancelled("Cancelled.")
        if self._progress is not None:
            self._progress(min(1.0, done / max(total, 1)), message)
        if should_cancel(self._cancel):
            raise Cancelled("Cancelled.")

    def batch_size(self) -> int:
        size = int(self.params.get("batch_size") or 0)
        return size if size > 0 else self.engine.auto_batch_size(self.x)

    def _need_key(self, kind: str, *parts: Any) -> tuple:
        return ("need", kind, self.model.key, self.x_key, *parts)

    def _target_key(self) -> tuple:
        if self.target is None:
            raise InvalidParameter("This method needs a target (a class, box, keypoint or mask) to explain.")
        return self.target.key()

    # --- needs -----------------------------------------------------------------------------
    def output(self) -> Any:
        """The model's output on the input (no gradients), computed once."""
        out, computed = self.engine.forward_cached(self.model, self.x, self.x_key, fresh=self.fresh)
        self.forward_passes += int(computed)
        return out

    def _lookup(self, key: tuple) -> Any:
        return None if self.fresh else self.engine.cache.get(key)

    def input_grad(self) -> torch.Tensor:
        """d target / d input, [1, C, H, W]."""
        found = self._lookup(self._need_key("input_grad", self._target_key()))
        if found is None:
            found, _ = self._gradient_pass(layers=(), with_input=True)
        return found

    def layer(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Activations and gradients of the target at a layer, each [1, K, h, w] (token grids reshaped)."""
        found = self._lookup(self._need_key("layer_grad", self._target_key(), name))
        if found is None:
            _, layers = self._gradient_pass(layers=(name,), with_input=False)
            found = layers[name]
        return found

    def activations(self, name: str) -> torch.Tensor:
        """Activations at a layer [1, K, h, w]; reuses any pass that already captured them."""
        key = self._need_key("acts", name)
        found = self._lookup(key)
        if found is None:
            with capture_layers(self.model.module, [name]) as cap, torch.no_grad():
                out = self.model.forward(self.x)
            self._count(1, 0)
            self._store_output(out)
            if name not in cap.outputs:
                raise InvalidParameter(f"Layer {name} was not used in the forward pass; pick another layer.")
            found = self._reshape(name, cap.outputs[name].detach())
            self.engine.cache.put(key, found)
        return found

    def guided_grad(self) -> torch.Tensor:
        """Guided-backpropagation gradient at the input, [1, C, H, W]."""
        key = self._need_key("guided_grad", self._target_key())
        found = self._lookup(key)
        if found is None:
            x = self.x.detach().clone().requires_grad_(True)
            with torch.enable_grad(), guided_relus(self.model.module):
                score = self.target(self.model.forward(x)).sum()
                if not score.requires_grad:
                    raise InvalidParameter(
                        "The target score does not depend on the input, so it has no gradient."
                    )
                (found,) = torch.autograd.grad(score, [x])
            self._count(1, 1)
            self.engine.cache.put(key, found)
        return found

    def _gradient_pass(
        self, layers: tuple[str, ...], with_input: bool
    ) -> tuple[torch.Tensor | None, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
        """One forward + backward for the target: gradients at `layers`, and at the input if asked.

        Backward stops at the deepest layer asked for, so a CAM alone does not pay for the input
        gradient. A pass that goes down to the input anyway also keeps every candidate layer of a
        registered model: a CAM afterwards then costs no pass at all.
        """
        target = self.target
        assert target is not None
        wanted = list(layers)
        if with_input and self.model.spec is not None:
            wanted += [name for name in self.model.layers() if name not in wanted]
        x = self.x.detach().clone().requires_grad_(True)
        start = time.perf_counter()
        with torch.enable_grad(), capture_layers(self.model.module, wanted) as cap:
            out = self.model.forward(x)
            score = target(out).sum()
            missing = [name for name in layers if name not in cap.outputs]
            if missing:
                raise InvalidParameter(
                    f"Layer {missing[0]} was not used in the forward pass; pick another layer."
                )
            if not score.requires_grad:
                raise InvalidParameter(
                    "The target score does not depend on the input, so it has no gradient."
                )
            captured = [name for name in wanted if name in cap.outputs and cap.outputs[name].requires_grad]
            inputs = ([x] if with_input else []) + [cap.outputs[name] for name in captured]
            grads = list(torch.autograd.grad(score, inputs, allow_unused=True))
        self.engine.record_speed(self.model, "backward", time.perf_counter() - start, 1)
        self._count(1, 1)
        self._store_output(out)
        tkey = target.key()
        input_grad = None
        if with_input:
            input_grad = _zeros_if_none(grads.pop(0), x)
            self.engine.cache.put(self._need_key("input_grad", tkey), input_grad)
        results: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for name, grad in zip(captured, grads):
            act = cap.outputs[name]
            try:
                pair = (self._reshape(name, act.detach()), self._reshape(name, _zeros_if_none(grad, act)))
            except InvalidParameter:
                if name in layers:
                    raise
                continue  # an opportunistic layer that is not a spatial map: not worth keeping
            results[name] = pair
            self.engine.cache.put(self._need_key("layer_grad", tkey, name), pair)
            self.engine.cache.put(self._need_key("acts", name), pair[0])
        return input_grad, results

    def _reshape(self, layer: str, tensor: torch.Tensor) -> torch.Tensor:
        fn = self.model.reshape_for(layer)
        out = fn(tensor) if fn is not None else tensor
        if out.ndim != 4:
            raise InvalidParameter(
                f"Layer {layer} outputs a tensor of shape {tuple(tensor.shape)}; CAM methods need a spatial "
                "map [N, C, h, w]. Pick a convolutional layer."
            )
        return out

    def _store_output(self, out: Any) -> None:
        key = ("need", "forward", self.model.key, self.x_key)
        if key not in self.engine.cache:
            self.engine.cache.put(key, _detach(out))

    def count_passes(self, forward: int, backward: int = 0) -> None:
        """Count passes a method made itself (e.g. a baseline's score)."""
        self._count(forward, backward)

    def _count(self, forward: int, backward: int) -> None:
        self.forward_passes += forward
        self.backward_passes += backward
        self.engine.forward_count += forward

    # --- batched work ------------------------------------------------------------------------
    def gradients(self, xs: torch.Tensor) -> torch.Tensor:
        """Gradients of the target for a batch of inputs [B, C, H, W] (one pass per image)."""
        target = self.target
        assert target is not None
        inputs = xs.detach().clone().requires_grad_(True)
        start = time.perf_counter()
        with torch.enable_grad():
            score = target(self.model.forward(inputs)).sum()
            grad = _grad_or_zeros(score, inputs)
        self.engine.record_speed(self.model, "backward", time.perf_counter() - start, len(xs))
        self._count(len(xs), len(xs))
        return grad

    def guided_gradients(self, xs: torch.Tensor) -> torch.Tensor:
        target = self.target
        assert target is not None
        inputs = xs.detach().clone().requires_grad_(True)
        with torch.enable_grad(), guided_relus(self.model.module):
            score = target(self.model.forward(inputs)).sum()
            grad = _grad_or_zeros(score, inputs)
        self._count(len(xs), len(xs))
        return grad

    def scores(self, xs: torch.Tensor, score: Callable[[Any], torch.Tensor] | None = None) -> torch.Tensor:
        """Perturbation scores of the target (or of `score(output)`) for a batch, without gradients: [B]."""
        target = self.target
        assert target is not None
        start = time.perf_counter()
        with torch.no_grad():
            out = self.model.forward(xs)
            values = score(out) if score is not None else self.model.adapter.perturbation_score(target, out)
        self.engine.record_speed(self.model, "forward", time.perf_counter() - start, len(xs))
        self._count(len(xs), 0)
        return values.detach().float()

    def for_batches(self, total: int, body: Callable[[int, int], None], message: str) -> None:
        """Call `body(start, stop)` over [0, total) in batches, with progress and cancellation."""
        size = self.batch_size()
        self.step(0, total, message)
        for start in range(0, total, size):
            stop = min(total, start + size)
            body(start, stop)
            self.step(stop, total, message)


def _grad_or_zeros(score: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """d score / d inputs; zeros when the score does not reach the inputs (e.g. a detection target
    matched on none of a batch of noisy or interpolated images)."""
    if not score.requires_grad:
        return torch.zeros_like(inputs)
    (grad,) = torch.autograd.grad(score, [inputs], allow_unused=True)
    return _zeros_if_none(grad, inputs)


def _zeros_if_none(grad: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(like).detach() if grad is None else grad.detach()


def _detach(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, dict):
        return {k: _detach(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_detach(v) for v in value)
    return value


class Engine:
    """One per process (see `get_engine`): models, caches and per-model locks live here."""

    def __init__(self, device: str | torch.device | None = None, cache_bytes: int | None = None) -> None:
        self.device = pick_device(device)
        self.cache = LRUCache(cache_bytes if cache_bytes is not None else default_cache_bytes(self.device))
        self._models: dict[tuple[str, str], LoadedModel] = {}
        self._wrapped: dict[str, LoadedModel] = {}
        self._load_lock = threading.Lock()
        self._speed: dict[tuple[str, str], float] = {}
        self._speed_samples: dict[tuple[str, str], deque[float]] = {}
        self._channels: dict[tuple[str, str], int] = {}
        self.forward_count = 0

    def describe_device(self) -> str:
        return describe(self.device)

    # --- models ---------------------------------------------------------------------------
    def load_model(self, model_id: str, weights: str | None = "default") -> LoadedModel:
        """A registered model, loaded once per process and weights choice; eval mode, on the device."""
        spec = get_spec(model_id)
        weights_key = "random" if weights is None else str(weights)
        with self._load_lock:
            found = self._models.get((model_id, weights_key))
            if found is not None:
                return found
            module = self._build(spec, weights)
            module.eval().to(self.device)
            model = LoadedModel(module, engine=self, spec=spec, weights=weights_key, device=self.device)
            self._models[(model_id, weights_key)] = model
            return model

    def _build(self, spec: Any, weights: str | None) -> nn.Module:
        if weights is None:
            return spec.build(None)
        if weights == "default":
            if spec.bundled_weights is not None:
                path = spec.bundled_weights()
                if not path.is_file():
                    raise WeightsUnavailable(
                        f"The bundled weights file '{path.name}' is missing from {path.parent}.",
                        file_name=path.name,
                        folder=str(path.parent),
                    )
                return load_into(spec.build(None), read_state_dict(path), f"Bundled weights {path.name}")
            if spec.weights_enum is not None:
                return spec.build(spec.weights_enum())
            raise UnknownModel(f"Model {spec.id} has no default weights; pass weights=None or a file path.")
        module = spec.build(None)
        return load_into(module, read_state_dict(weights), f"The weights file {weights}")

    def loaded_models(self) -> list[LoadedModel]:
        with self._load_lock:
            return list(self._models.values())

    def unload(self, model_id: str, weights: str | None = None) -> None:
        """Forget a loaded model: every weights choice of it, or only `weights` (e.g. a file path)."""
        with self._load_lock:
            for key in [k for k in self._models if k[0] == model_id]:
                if weights is None or key[1] == str(weights):
                    del self._models[key]

    def wrap(self, module: nn.Module, task: str = "classification") -> LoadedModel:
        """A plain nn.Module as a model of `task` (identity preprocessing, layers by dotted name)."""
        token = module_token(module)
        with self._load_lock:
            found = self._wrapped.get(token)
            if found is None or found.module is not module or found.task != task:
                found = LoadedModel(module, engine=self, task=task)
                self._wrapped[token] = found
            return found

    def resolve(self, model: LoadedModel | nn.Module | str) -> LoadedModel:
        if isinstance(model, LoadedModel):
            return model
        if isinstance(model, nn.Module):
            return self.wrap(model)
        if isinstance(model, str):
            return self.load_model(model)
        raise InvalidParameter(f"Expected a loaded model or an nn.Module, got {type(model).__name__}.")

    # --- needs shared by every method -----------------------------------------------------
    def forward(self, model: LoadedModel | nn.Module, x: torch.Tensor, x_key: str | None = None) -> Any:
        """The model output for x without gradients; cached."""
        return self.forward_cached(self.resolve(model), x, x_key)[0]

    def forward_cached(
        self, model: LoadedModel, x: torch.Tensor, x_key: str | None = None, fresh: bool = False
    ) -> tuple[Any, bool]:
        """(output, whether a pass was made); `fresh` recomputes even when the output is cached."""
        x = self.check_input(model, x)
        key = ("need", "forward", model.key, x_key or image_digest(x))
        found = None if fresh else self.cache.get(key)
        if found is not None:
            return found, False
        with model.lock, torch.no_grad():
            start = time.perf_counter()
            found = _detach(model.forward(x))
            self.record_speed(model, "forward", time.perf_counter() - start, len(x))
        self.forward_count += 1
        self.cache.put(key, found)
        return found, True

    def check_input(self, model: LoadedModel, x: torch.Tensor) -> torch.Tensor:
        """x as [1, C, H, W] float32 on the model's device, with clear errors for anything else."""
        if not isinstance(x, torch.Tensor):
            raise InvalidParameter("The input must be a tensor [1, C, H, W]: use model.preprocess(image).")
        if x.ndim == 3:
            x = x.unsqueeze(0)
        if x.ndim != 4 or x.shape[0] != 1:
            raise InvalidParameter(
                f"Explain one image at a time: expected [1, C, H, W], got {tuple(x.shape)}."
            )
        if not torch.isfinite(x).all():
            raise InvalidParameter("The input contains NaN or infinite values.")
        return x.to(model.device, torch.float32)

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
        x_key = image_digest(x)
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
                _params_key(resolved),
                target.key() if target else None,
            )
            if use_cache:
                hit = self.cache.get(result_key)
                if hit is not None:
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

    # --- cost and speed -------------------------------------------------------------------
    def estimate(
        self,
        model: LoadedModel | nn.Module,
        method: str,
        params: Mapping[str, Any] | None = None,
        x: torch.Tensor | None = None,
    ) -> Estimate:
        """Passes a method will make before it runs, and seconds once this model's speed was measured."""
        model = self.resolve(model)
        spec = get_method(method)
        resolved = spec.resolve(dict(params or {}), model.layers())
        layer = resolved.get("layer")
        size = tuple(x.shape[-2:]) if x is not None else tuple(_probe_input(model).shape[-2:])
        info = CostInfo(size, (lambda: self.layer_channels(model, layer, x)) if layer else 0)
        forward, backward = spec.cost(resolved, info)
        fwd = self._speed.get((model.id, "forward"))
        bwd = self._speed.get((model.id, "backward"))
        seconds = None
        if (fwd is not None or forward == backward) and (bwd is not None or backward == 0):
            seconds = (forward - backward) * (fwd or 0.0) + backward * (bwd or 0.0)
        return Estimate(forward, backward, seconds)

    def layer_channels(self, model: LoadedModel, layer: str, x: torch.Tensor | None = None) -> int:
        key = (model.id, layer)
        if key not in self._channels:
            probe = x if x is not None else _probe_input(model)
            with model.lock, capture_layers(model.module, [layer]) as cap, torch.no_grad():
                model.forward(self.check_input(model, probe))
            if layer not in cap.outputs:
                raise InvalidParameter(f"Layer {layer} was not used in the forward pass.")
            fn = model.reshape_for(layer)
            out = fn(cap.outputs[layer]) if fn else cap.outputs[layer]
            self._channels[key] = int(out.shape[1])
        return self._channels[key]

    def record_speed(self, model: LoadedModel, kind: str, seconds: float, images: int) -> None:
        """Seconds per image of a forward (or forward + backward) pass, for time estimates.

        The first pass of a model pays for lazy initialisation and can be many times slower, so it only
        stands until later passes arrive; then the estimate is the median of the last few.
        """
        per_image = seconds / max(images, 1)
        key = (model.id, kind)
        samples = self._speed_samples.get(key)
        if samples is None:
            self._speed_samples[key] = deque(maxlen=5)
            self._speed[key] = per_image
            return
        samples.append(per_image)
        self._speed[key] = float(statistics.median(samples))

    def auto_batch_size(self, x: torch.Tensor) -> int:
        """Images per batch for the device, scaled down for inputs larger than 224x224."""
        base = {"cuda": 64, "mps": 32}.get(self.device.type, 16)
        scale = (224 * 224) / max(1, x.shape[-1] * x.shape[-2])
        return int(max(1, min(256, round(base * scale))))

    def stats(self) -> dict[str, Any]:
        cache: CacheStats = self.cache.stats()
        return {
            "device": self.describe_device(),
            "cache": cache,
            "models": [repr(m) for m in self.loaded_models()],
            "speed": dict(self._speed),
        }


def _probe_input(model: LoadedModel) -> torch.Tensor:
    size = model.spec.preprocess.crop if model.spec is not None and model.spec.preprocess.crop else 224
    return (
        model.preprocess(np.zeros((size, size, 3), np.uint8))
        if model.spec is not None
        else torch.zeros(1, 3, size, size)
    )


def _params_key(params: Mapping[str, Any]) -> tuple:
    # batch_size changes how work is split, not the result.
    return tuple(sorted((k, v) for k, v in params.items() if k != "batch_size"))


_ENGINE: Engine | None = None
_ENGINE_LOCK = threading.Lock()


def get_engine() -> Engine:
    """The process-wide engine (device from $SALIENCY_DEVICE or the best available)."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = Engine()
        return _ENGINE


def set_engine(engine: Engine) -> Engine:
    """Replace the process-wide engine (tests, or a different device)."""
    global _ENGINE
    with _ENGINE_LOCK:
        _ENGINE = engine
        return engine
