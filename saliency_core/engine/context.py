"""RunContext: the engine's `MethodContext`, which computes each need once and caches it per
(model, image, target, layer), and counts every model pass a method makes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from ..errors import Cancelled, InvalidParameter
from ..hooks import capture_layers, guided_relus
from ..methods.context import CancelFn, ProgressFn
from ..models.loaded import LoadedModel
from ..targets import Target
from .inputs import detach, should_cancel

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
        """Images per batch: the `batch_size` parameter, or the engine's choice for the device when 0."""
        size = int(self.params.get("batch_size") or 0)
        return size if size > 0 else self.engine.auto_batch_size(self.x)

    def count_passes(self, forward: int, backward: int = 0) -> None:
        """Count passes a method made itself (e.g. a baseline's score)."""
        self._count(forward, backward)

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
        return None if self.fresh else self.engine.cache.get(key)

    # --- needs -----------------------------------------------------------------------------
    def output(self) -> Any:
        """The model's output on the input (no gradients), computed once."""
        out, computed = self.engine.forward_cached(self.model, self.x, self.x_key, fresh=self.fresh)
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
        # A pass made for another need saw the plain output too: keep it, a later output() is then free.
        key = ("need", "forward", self.model.key, self.x_key)
        if key not in self.engine.cache:
            self.engine.cache.put(key, detach(out))

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
        """Guided-backpropagation gradients of the target for a batch of inputs [B, C, H, W]."""
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
    # autograd gives None for an input the score does not depend on; methods expect a tensor.
    return torch.zeros_like(like).detach() if grad is None else grad.detach()
