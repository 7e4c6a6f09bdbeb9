"""What a method may ask of the engine while it runs: the `MethodContext` protocol.

Methods code against this interface only, so a method can be unit-tested against a fake context (see
tests/core/test_method_context.py) and the engine is free to compute, cache and count the needs as it likes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

import torch

if TYPE_CHECKING:
    from ..models.loaded import LoadedModel
    from ..targets import Target

ProgressFn = Callable[[float, str], None]  # (fraction in [0, 1], message)
CancelFn = Callable[[], bool]  # True: stop at the next progress report
# (partial map [H, W] on the CPU, what produced it: "coarse: 49 of 729 windows"); shown while a method refines
PreviewFn = Callable[[torch.Tensor, str], None]
Cancel = CancelFn | threading.Event
# module -> a context manager that changes the backward pass while open (guided ReLUs, LRP rules)
Rules = Callable[[torch.nn.Module], AbstractContextManager]


class MethodContext(Protocol):
    """The input, the bound target, the resolved parameters and the shared needs of one run.

    Needs (`output`, `input_grad`, `layer`, `activations`, `guided_grad`) are computed at most once per
    (model, image, target, layer) and shared by every method; batched work (`gradients`, `scores`) is
    counted as model passes. `step` and `for_batches` report progress and raise `Cancelled` when asked;
    `preview` hands a partial map to whoever watches (a progressive method refining in place). `shared`
    keeps work that depends only on the model and the image (not the target or the parameters), such as
    incremental occlusion's plan, for later runs of any method; `make` counts its own passes.
    """

    x: torch.Tensor  # [1, C, H, W] on the model's device
    target: Target | None
    params: dict[str, Any]  # resolved: defaults filled, types coerced
    model: LoadedModel
    extras: dict[str, Any]  # method-specific diagnostics copied into Attribution.extras

    def step(self, done: int, total: int, message: str = "") -> None: ...

    def note(self, text: str) -> None: ...

    def shared(self, kind: str, make: Callable[[], Any]) -> Any: ...

    def preview(self, saliency: torch.Tensor, label: str) -> None: ...

    @property
    def wants_preview(self) -> bool: ...

    def for_batches(self, total: int, body: Callable[[int, int], None], message: str) -> None: ...

    def count_passes(self, forward: int, backward: int = 0) -> None: ...

    def output(self) -> Any: ...

    def input_grad(self) -> torch.Tensor: ...

    def layer(self, name: str) -> tuple[torch.Tensor, torch.Tensor]: ...

    def activations(self, name: str) -> torch.Tensor: ...

    def guided_grad(self) -> torch.Tensor: ...

    def gradients(self, xs: torch.Tensor, rules: Rules | None = None) -> torch.Tensor: ...

    def guided_gradients(self, xs: torch.Tensor) -> torch.Tensor: ...

    def scores(
        self, xs: torch.Tensor, score: Callable[[Any], torch.Tensor] | None = None
    ) -> torch.Tensor: ...
