"""RunContext: the engine's `MethodContext`, which computes each need once and caches it per
(model, image, target, layer), counts every model pass a method makes, and sizes batches to the batch
memory limit (retrying a batch that runs out of memory at half the size)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import torch

from ..device import free_memory, is_out_of_memory
from ..errors import Cancelled, InvalidParameter
from ..hooks import capture_layers, guided_relus
from ..limits import limits
from ..methods.context import CancelFn, PreviewFn, ProgressFn, Rules
from ..models.loaded import LoadedModel
from ..targets import Target
from .cost import device_batch_size
from .inputs import detach, should_cancel
from .precision import as_float32, forward_precision

if TYPE_CHECKING:
    from .core import Engine


class RunContext:
    """What a method sees: the input, the bound target, its parameters, and the shared needs."""

    x: torch.Tensor
    target: Target | None
    params: dict[str, Any]
    model: LoadedModel
    extras: dict[str, Any]

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
        self.extras = {}
        self.notes: list[str] = []  # sentences for Attribution.notes
        self.use_cache = True  # False: every need is recomputed and nothing is written to the cache
        self._batch_grad: bool | None = None  # whether batches need gradients: None until one ran
        self._retry_size: int | None = None  # after an out-of-memory error: the batch size that is left
        self._failed_size: int | None = None  # the first batch size that ran out of memory
        self._caps: list[tuple[bool, int]] = []  # (gradients assumed, size) of batches the limit capped

    # --- bookkeeping -----------------------------------------------------------------------
    def step(self, done: int, total: int, message: str = "") -> None:
        """Report progress and stop with Cancelled when asked to."""
        if should_cancel(self._cancel):
            raise Cancelled("Cancelled.")
        if self._progress is not None:
            self._progress(min(1.0, done / max(total, 1)), message)
        if should_cancel(self._cancel):
            raise Cancelled("Cancelled.")

    @property
    def wants_preview(self) -> bool:
        """Whether someone watches partial maps (a progressive method skips building them otherwise)."""
        return getattr(self._progress, "preview", None) is not None

    def preview(self, saliency: torch.Tensor, label: str) -> None:
        """Hand a partial map [H, W] (and what produced it) to the watcher, as a CPU copy."""
        show = getattr(self._progress, "preview", None)
        if show is not None:
            show(saliency.detach().to("cpu", torch.float32, copy=True), label)

    def count_passes(self, forward: int, backward: int = 0) -> None:
        """Count passes a method made itself (e.g. a baseline's score)."""
        self._count(forward, backward)

    def _record(self, kind: str, start: float, xs: torch.Tensor) -> None:
        """The speed of a batch of passes of `kind` that began at `start` (perf_counter), for estimates."""
        self.engine.record_speed(self.model, kind, time.perf_counter() - start, len(xs), tuple(xs.shape))

    def _count(self, forward: int, backward: int) -> None:
        self.forward_passes += forward
        self.backward_passes += backward
        self.engine.forward_count += forward

    def _need_key(self, kind: str, *parts: Any) -> tuple:
        return ("need", kind, self.model.key, self.x_key, *parts)

    def _target_key(self) -> tuple:
        if self.target is None:
            raise InvalidParameter("This method needs a target (a class, box, keypoint or mask) to explain.")
        return self.target.key()

    def _lookup(self, key: tuple) -> Any:
        return self.engine.cache.get(key) if self.use_cache else None

    def _store(self, key: tuple, value: Any) -> None:
        if self.use_cache:
            self.engine.cache.put(key, value)

    def shared(self, kind: str, make: Callable[[], Any]) -> Any:
        """`make()`'s value for this model and image, made once and kept in the engine's cache (its size
        is the value's `cache_bytes()` where it has one)."""
        key = self._need_key(f"shared:{kind}")
        found = self._lookup(key)
        if found is None:
            found = make()
            if self.use_cache:
                size = found.cache_bytes() if hasattr(found, "cache_bytes") else None
                self.engine.cache.put(key, found, size)
        return found

    def note(self, text: str) -> None:
        """Add a sentence to the result's notes (once)."""
        if text not in self.notes:
            self.notes.append(text)

    # --- needs -----------------------------------------------------------------------------
    def output(self) -> Any:
        """The model's output on the input (no gradients), computed once."""
        out, computed = self.engine.forward_cached(self.model, self.x, self.x_key, use_cache=self.use_cache)
        self.forward_passes += int(computed)
        return out

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
            start = time.perf_counter()
            with capture_layers(self.model.module, [name]) as cap, torch.no_grad():
                out = self.model.forward(self.x)
            self._record("forward", start, self.x)
            self._count(1, 0)
            self._store_output(out)
            if name not in cap.outputs:
                raise InvalidParameter(f"Layer {name} was not used in the forward pass; pick another layer.")
            found = self._reshape(name, cap.outputs[name].detach())
            self._store(key, found)
        return found

    def guided_grad(self) -> torch.Tensor:
        """Guided-backpropagation gradient at the input, [1, C, H, W]."""
        key = self._need_key("guided_grad", self._target_key())
        found = self._lookup(key)
        if found is None:
            x = self.x.detach().clone().requires_grad_(True)
            start = time.perf_counter()
            with torch.enable_grad(), guided_relus(self.model.module):
                score = self.target(self.model.forward(x)).sum()
                if not score.requires_grad:
                    raise InvalidParameter(
                        "The target score does not depend on the input, so it has no gradient."
                    )
                (found,) = torch.autograd.grad(score, [x])
            self._record("backward", start, x)
            self._count(1, 1)
            self._store(key, found)
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
        # A backward that stops at a CAM's layer is much cheaper than one down to the input.
        self._record("backward" if with_input or not layers else f"layer:{layers[0]}", start, x)
        self._count(1, 1)
        self._store_output(out)
        tkey = target.key()
        input_grad = None
        if with_input:
            input_grad = _zeros_if_none(grads.pop(0), x)
            self._store(self._need_key("input_grad", tkey), input_grad)
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
            self._store(self._need_key("layer_grad", tkey, name), pair)
            self._store(self._need_key("acts", name), pair[0])
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
        # A pass made for another need saw the plain output too: keep it, a later output() is then free.
        key = ("need", "forward", self.model.key, self.x_key)
        if self.use_cache and key not in self.engine.cache:
            self.engine.cache.put(key, detach(out))

    # --- batched work ------------------------------------------------------------------------
    def gradients(self, xs: torch.Tensor, rules: Rules | None = None) -> torch.Tensor:
        """Gradients of the target for a batch of inputs [B, C, H, W] (one pass per image).

        `rules(module)`, a context manager, changes the backward pass while it is open (guided ReLUs,
        DeepLIFT multipliers, zennit's LRP composites); its hooks exist only for this batch.
        """
        target = self.target
        assert target is not None
        self._batch_grad = True
        inputs = xs.detach().clone().requires_grad_(True)
        start = time.perf_counter()
        with torch.enable_grad(), rules(self.model.module) if rules is not None else nullcontext():
            score = target(self.model.forward(inputs)).sum()
            grad = _grad_or_zeros(score, inputs)
        self._record("backward", start, xs)
        self._count(len(xs), len(xs))
        return grad

    def guided_gradients(self, xs: torch.Tensor) -> torch.Tensor:
        """Guided-backpropagation gradients of the target for a batch of inputs [B, C, H, W]."""
        return self.gradients(xs, rules=guided_relus)

    def scores(self, xs: torch.Tensor, score: Callable[[Any], torch.Tensor] | None = None) -> torch.Tensor:
        """Perturbation scores of the target (or of `score(output)`) for a batch, without gradients: [B]."""
        target = self.target
        assert target is not None
        self._batch_grad = self._batch_grad or False
        adapter = self.model.adapter

        def scored(out: Any) -> torch.Tensor:
            values = score(out) if score is not None else adapter.perturbation_score(target, out)
            return values.detach().float()

        start = time.perf_counter()
        # Forward-only, so inference mode: no autograd bookkeeping. Nothing made here is kept but the
        # scores, cloned out of it below, so no inference tensor can meet autograd later.
        # The batch that measures this model's memory runs in float32: the budget it sets also sizes
        # gradient batches, and half precision would halve what it sees.
        measuring = self.engine.budget_batch_size(self.model, self.x, False) is None
        with torch.inference_mode():
            with forward_precision(self.model, enabled=not measuring) as policy:
                out = self.model.forward(policy.prepare(xs))
            values = scored(as_float32(out) if policy.active else out)
            # float16 overflows past 65504: a batch with a non-finite score is redone in float32.
            if policy.active and not bool(torch.isfinite(values).all()):
                values = scored(self.model.forward(xs))
        if policy.active:
            self.note(policy.note())
        self._record("forward", start, xs)
        self._count(len(xs), 0)
        return values.clone()

    def for_batches(self, total: int, body: Callable[[int, int], None], message: str) -> None:
        """Call `body(start, stop)` over [0, total) in batches, with progress and cancellation.

        Batches fit max_batch_bytes: until this model was measured at this input shape the first batch is
        one image, measured. A batch that runs out of memory is retried at half the size, so a body must
        change nothing before its passes succeed (each family's does: it draws, passes, then adds up).
        """
        requested = int(self.params.get("batch_size") or 0)
        self.step(0, total, message)
        start = 0
        while start < total:
            stop = min(total, start + self._batch_size(requested, total - start))
            if not self._run_batch(body, start, stop):
                self._shrink(stop - start)
                continue
            start = stop
            self.step(stop, total, message)
        grad = self._batch_grad is not False
        capped = [size for assumed, size in self._caps if assumed == grad]
        if capped:
            limit = limits().max_batch_bytes
            shown = f"{limit / 2**20:.0f} MiB" if limit >= 2**20 else f"{limit / 1024:.0f} KiB"
            self.note(
                f"batch_size {requested} was lowered to {max(capped)}: larger batches would need more than "
                f"this server's batch memory limit of {shown} (max_batch_bytes)."
            )
        if self._failed_size is not None:
            self.note(
                f"A batch of {self._failed_size} images ran out of memory on {self.model.device.type}; "
                f"the work was redone in batches of {self._retry_size}."
            )

    def _batch_size(self, requested: int, remaining: int) -> int:
        """The next batch's size: the request (or the device's usual size), within the memory budget."""
        grad = self._batch_grad is not False  # unknown before the first batch: assume the larger need
        budget = self.engine.budget_batch_size(self.model, self.x, grad)
        if budget is None:
            return 1  # measured by _run_batch
        if self._retry_size is not None:
            budget = min(budget, self._retry_size)
        size = requested if requested > 0 else device_batch_size(self.model.device, self.x)
        if requested > budget and remaining > budget and self._retry_size is None:
            self._caps.append((grad, budget))
        return min(size, budget)

    def _run_batch(self, body: Callable[[int, int], None], start: int, stop: int) -> bool:
        """Run one batch (measuring its memory if the model is not measured yet); False when a batch of
        more than one image ran out of memory (the caller retries it smaller)."""
        measure = self.engine.budget_batch_size(self.model, self.x, True) is None
        try:
            if measure:
                with self.engine.measure_batch_memory(self.model, self.x, stop - start) as meter:
                    body(start, stop)
                self._batch_grad = self._batch_grad or meter.grad
            else:
                body(start, stop)
        except Exception as exc:
            if stop - start <= 1 or not is_out_of_memory(exc):
                raise
            # Returning (not retrying here) ends the except block, which frees the failed batch's
            # tensors that the traceback still holds.
            return False
        return True

    def _shrink(self, failed: int) -> None:
        grad = self._batch_grad is not False
        free_memory(self.model.device)
        retry = self.engine.record_out_of_memory(self.model, self.x, grad, failed)
        self._retry_size = min(retry, self._retry_size or retry)
        self._failed_size = self._failed_size or failed


class Reporter:
    """A progress function that also takes partial maps: what `RunContext.preview` looks for."""

    def __init__(self, progress: ProgressFn | None, preview: PreviewFn) -> None:
        self._progress = progress
        self.preview = preview

    def __call__(self, fraction: float, message: str) -> None:
        if self._progress is not None:
            self._progress(fraction, message)


def with_preview(progress: ProgressFn | None, preview: PreviewFn | None) -> ProgressFn | None:
    """`progress`, carrying `preview` along when one is given."""
    return progress if preview is None else Reporter(progress, preview)


def _grad_or_zeros(score: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """d score / d inputs; zeros when the score does not reach the inputs (e.g. a detection target
    matched on none of a batch of noisy or interpolated images)."""
    if not score.requires_grad:
        return torch.zeros_like(inputs)
    (grad,) = torch.autograd.grad(score, [inputs], allow_unused=True)
    return _zeros_if_none(grad, inputs)


def _zeros_if_none(grad: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    # autograd gives None for an input the score does not depend on; methods expect a tensor.
    return torch.zeros_like(like).detach() if grad is None else grad.detach()
