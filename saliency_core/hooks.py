"""Capture layer activations inside a `with` block; hooks never outlive it.

Activations keep their autograd graph so that one `torch.autograd.grad` call can return the
gradients at the layers and at the input together.

A layer name may end with `:key` to pick one entry of a module that returns a dict, tuple or list
(e.g. "backbone.fpn:0", the finest level of torchvision's feature pyramid); without a key the
first tensor is taken.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from .errors import InvalidParameter

ReshapeFn = Callable[[torch.Tensor], torch.Tensor]


def split_layer(name: str) -> tuple[str, str | None]:
    """ "backbone.fpn:0" -> ("backbone.fpn", "0"); a name without ':' has no key."""
    module_name, sep, key = name.partition(":")
    return module_name, (key if sep else None)


def refuse_script(module: nn.Module) -> None:
    """TorchScript modules take no Python hooks: say so instead of torch's RuntimeError."""
    if isinstance(module, torch.jit.ScriptModule):
        raise InvalidParameter(
            "TorchScript programs do not allow layer hooks, so methods that read a layer (CAM, guided "
            "backpropagation) cannot run on them: use a gradient or perturbation method, or save the model "
            "with torch.export (.pt2), whose layers can be read."
        )


def get_layer(module: nn.Module, name: str) -> nn.Module:
    """The sub-module at a dotted name (an output key after ':' is ignored), with a helpful error."""
    refuse_script(module)
    name = split_layer(name)[0]
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


def select_output(output: object, key: str) -> torch.Tensor:
    """The entry `key` of a dict output, or the index `key` of a tuple/list output."""
    value: object = None
    if isinstance(output, dict):
        value, known = output.get(key), list(output)
    elif isinstance(output, (tuple, list)):
        known = list(range(len(output)))
        if key.isdigit() and int(key) < len(output):
            value = output[int(key)]
    else:
        known = []
    if not isinstance(value, torch.Tensor):
        raise InvalidParameter(
            f"The layer has no tensor output '{key}'; its outputs are: {', '.join(map(str, known)) or 'none'}."
        )
    return value


def replace_output(output: object, key: str | None, tensor: torch.Tensor) -> object:
    """The output with the selected tensor swapped for `tensor` (None: leave the output as it is)."""
    if isinstance(output, torch.Tensor):
        return tensor
    if isinstance(output, dict):
        if key is None:
            key = next(iter(output))
        out = dict(output) if type(output) is dict else type(output)(output)
        out[key] = tensor
        return out
    if type(output) in (tuple, list):
        items = list(output)
        items[0 if key is None else int(key)] = tensor
        return type(output)(items)
    return None  # other containers (named tuples, ...): hand the original downstream


def first_tensor(output: object) -> torch.Tensor | None:
    """The tensor a layer outputs: itself, or the first of a tuple, list or dict (None if there is none)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    if isinstance(output, dict) and output:
        first = next(iter(output.values()))
        return first if isinstance(first, torch.Tensor) else None
    return None


def _first_tensor(output: object) -> torch.Tensor:
    found = first_tensor(output)
    if found is None:
        raise InvalidParameter("The chosen layer does not output a tensor; pick another layer.")
    return found


@contextmanager
def capture_layers(module: nn.Module, names: Sequence[str]) -> Iterator[Capture]:
    """Record the outputs of the named layers during forward passes run inside the block."""
    capture = Capture()
    handles = []

    def make_hook(name: str):
        key = split_layer(name)[1]

        def hook(_mod: nn.Module, _inputs: object, output: object) -> object:
            tensor = _first_tensor(output) if key is None else select_output(output, key)
            capture.outputs[name] = tensor
            if not tensor.requires_grad:
                return None
            # A later in-place op (ReLU(inplace=True)) would overwrite the captured tensor and
            # redirect its gradient; handing a copy downstream keeps the captured one intact.
            return replace_output(output, key, tensor.clone())

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
    refuse_script(module)
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
