"""Capture layer activations inside a `with` block; hooks never outlive it.

Activations keep their autograd graph so that one `torch.autograd.grad` call can return the
gradients at the layers and at the input together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from .errors import InvalidParameter

ReshapeFn = Callable[[torch.Tensor], torch.Tensor]


def get_layer(module: nn.Module, name: str) -> nn.Module:
    """The sub-module at a dotted name, with a helpful error when it does not exist."""
    try:
        return module.get_submodule(name)
    except AttributeError:
        close = [
            n for n, _ in module.named_modules() if n and (name in n or n.startswith(name.split(".")[0]))
        ]
        hint = f" Close matches: {', '.join(close[:6])}." if close else ""
        raise InvalidParameter(f"The model has no layer named '{name}'.{hint}") from None


class Capture:
    """Outputs of hooked layers from the most recent forward pass, keyed by layer name."""

    def __init__(self) -> None:
        self.outputs: dict[str, torch.Tensor] = {}
        self.calls: dict[str, int] = {}


def _first_tensor(output: object) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    if isinstance(output, dict) and output:
        first = next(iter(output.values()))
        if isinstance(first, torch.Tensor):
            return first
    raise InvalidParameter("The chosen layer does not output a tensor; pick another layer.")


@contextmanager
def capture_layers(module: nn.Module, names: Sequence[str]) -> Iterator[Capture]:
    """Record the outputs of the named layers during forward passes run inside the block."""
    capture = Capture()
    handles = []

    def make_hook(name: str):
        def hook(_mod: nn.Module, _inputs: object, output: object) -> object:
            tensor = _first_tensor(output)
            capture.outputs[name] = tensor
            capture.calls[name] = capture.calls.get(name, 0) + 1
            if not tensor.requires_grad:
                return None
            # A later in-place op (ReLU(inplace=True)) would overwrite the captured tensor and
            # redirect its gradient; handing a copy downstream keeps the captured one intact.
            copy = tensor.clone()
            if isinstance(output, torch.Tensor):
                return copy
            if isinstance(output, tuple):
                return (copy, *output[1:])
            if isinstance(output, list):
                return [copy, *output[1:]]
            return None

        return hook

    try:
        for name in names:
            handles.append(get_layer(module, name).register_forward_hook(make_hook(name)))
        yield capture
    finally:
        for handle in handles:
            handle.remove()


class _GuidedReLU(torch.autograd.Function):
    """Identity on a ReLU's output; backward lets only positive gradients through where it was positive."""

    @staticmethod
    def forward(ctx, relu_output: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(relu_output)
        return relu_output.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (relu_output,) = ctx.saved_tensors
        return grad.clamp(min=0) * (relu_output > 0).to(grad.dtype)


@contextmanager
def guided_relus(module: nn.Module) -> Iterator[int]:
    """Guided backpropagation: inside the block every nn.ReLU also zeroes negative gradients."""
    handles = []

    def hook(_mod: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor | None:
        if isinstance(output, torch.Tensor) and output.requires_grad:
            return _GuidedReLU.apply(output)
        return None

    try:
        for sub in module.modules():
            if isinstance(sub, nn.ReLU):
                handles.append(sub.register_forward_hook(hook))
        yield len(handles)
    finally:
        for handle in handles:
            handle.remove()


def hook_count(module: nn.Module) -> int:
    """Number of hooks registered on any sub-module (for tests: must be 0 after every method)."""
    total = 0
    for sub in module.modules():
        for attr in (
            "_forward_hooks",
            "_forward_pre_hooks",
            "_backward_hooks",
            "_backward_pre_hooks",
            "_state_dict_hooks",
            "_load_state_dict_pre_hooks",
        ):
            total += len(getattr(sub, attr, {}) or {})
    return total
