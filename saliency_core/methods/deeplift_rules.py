"""DeepLIFT's rescale rule (Shrikumar et al. 2017) as forward hooks, for `ctx.gradients(xs, rules=rescale_rules)`.

The batch is [inputs; references]: its first half is paired element by element with its second half.
At every nonlinearity the rule knows, a forward hook replaces the output y = f(x) by

    y.detach() + (x - x.detach()) * m.detach(),   m = (f(x) - f(x_ref)) / (x - x_ref)

which has the same value but backpropagates the multiplier m instead of f'(x); where |x - x_ref| is
tiny, the output keeps its own gradient (the limit of m). The multiplier is computed inside each call,
so a module that is called several times per forward (torchvision's ResNet blocks reuse one ReLU) gets
the right multiplier at each call. Max-pooling follows captum's rule, with the unpooling summed where
windows overlap. Everything else (convolutions, batch norm in eval mode, sums, functional activations)
backpropagates its plain gradient: exact for linear parts, the gradient approximation elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-10  # captum's threshold below which a difference of inputs counts as zero
# Elementwise nonlinearities: the rescale rule applies to each element on its own.
ELEMENTWISE: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.Sigmoid,
    nn.Tanh,
    nn.SiLU,
    nn.GELU,
    nn.Softplus,
    nn.Mish,
    nn.Hardtanh,
    nn.Hardsigmoid,
    nn.Hardswish,
)
POOLS: tuple[type[nn.Module], ...] = (nn.MaxPool2d,)
KNOWN = ELEMENTWISE + POOLS


def known_nonlinearities(model: nn.Module) -> list[str]:
    """Names of the modules of `model` whose backward pass the rescale rule replaces."""
    return [name for name, m in model.named_modules() if isinstance(m, KNOWN)]


def _paired(t: Any) -> bool:
    return (
        isinstance(t, torch.Tensor)
        and t.requires_grad
        and t.is_floating_point()
        and t.ndim >= 1
        and t.shape[0] % 2 == 0
    )


def _elementwise(inp: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """The output with the same value whose backward multiplies by (Δout / Δin), or f' where Δin ≈ 0."""
    with torch.no_grad():
        x, x_ref = inp.chunk(2)
        y, y_ref = out.chunk(2)
        delta_in = torch.cat([x - x_ref] * 2)
        delta_out = torch.cat([y - y_ref] * 2)
        tiny = delta_in.abs() < EPS
        # No division by ~0 in the unused branch: 0 * inf would poison the backward with NaN.
        m = torch.where(tiny, torch.zeros_like(delta_in), delta_out / torch.where(tiny, 1.0, delta_in))
    rescaled = out.detach() + (inp - inp.detach()) * m
    return torch.where(tiny, out, rescaled)


class _MaxPoolRescale(torch.autograd.Function):
    """Captum's max-pool rule: the output difference is split between the input's and the reference's
    maxima, unpooled (scatter-added, so overlapping windows lose nothing) and divided by Δin."""

    @staticmethod
    def forward(ctx: Any, inp: torch.Tensor, out: torch.Tensor, pool: nn.MaxPool2d) -> torch.Tensor:
        x, x_ref = inp.detach().chunk(2)
        y, y_ref = out.detach().chunk(2)
        args = (pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.ceil_mode)
        _, idx = F.max_pool2d(x, *args, return_indices=True)
        _, idx_ref = F.max_pool2d(x_ref, *args, return_indices=True)
        ctx.save_for_backward(x - x_ref, y, y_ref, idx, idx_ref)
        return out.detach().clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        delta_in, y, y_ref, idx, idx_ref = ctx.saved_tensors
        g, g_ref = grad.chunk(2)
        top = torch.max(y, y_ref)
        # Σ over inputs of (grad_in * Δin) = g * ((top - y_ref) + (y - top)) = g * Δout: summation holds.
        spread = _unpool(g * (top - y_ref), idx, delta_in) + _unpool(g * (y - top), idx_ref, delta_in)
        tiny = delta_in.abs() < EPS
        plain = _unpool(g, idx, delta_in)  # the ordinary max-pool gradient where Δin ≈ 0
        ratio = torch.where(tiny, plain, spread / torch.where(tiny, 1.0, delta_in))
        plain_ref = _unpool(g_ref, idx_ref, delta_in)
        ratio_ref = torch.where(tiny, plain_ref, ratio)  # the reference half, as captum: same multiplier
        return torch.cat([ratio, ratio_ref]), None, None


def _unpool(values: torch.Tensor, indices: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Scatter-add pooled values [N, C, h, w] back to the positions of their maxima in `like`'s shape."""
    flat = torch.zeros(
        like.shape[0], like.shape[1], like[0, 0].numel(), dtype=values.dtype, device=values.device
    )
    flat.scatter_add_(2, indices.flatten(2), values.flatten(2))
    return flat.view_as(like)


@contextmanager
def rescale_rules(model: nn.Module) -> Iterator[None]:
    """While open, every known nonlinearity of `model` backpropagates DeepLIFT's rescale multipliers
    for a batch laid out as [inputs; references] (see the module docstring). Hooks removed on exit."""
    saved: dict[int, torch.Tensor] = {}
    handles = []

    def keep_input(module: nn.Module, args: tuple) -> None:
        inp = args[0] if args else None
        if _paired(inp) and torch.is_grad_enabled():
            # An in-place module overwrites its input: keep the values it had (the clone is in the graph).
            saved[id(module)] = inp.clone() if getattr(module, "inplace", False) else inp

    def rescale(module: nn.Module, args: tuple, out: Any) -> Any:
        inp = saved.pop(id(module), None)
        if inp is None or not isinstance(out, torch.Tensor) or out.shape[0] != inp.shape[0]:
            return None
        if isinstance(module, POOLS):
            if out.ndim != 4:
                return None
            return _MaxPoolRescale.apply(inp, out, module)
        if out.shape != inp.shape:
            return None
        return _elementwise(inp, out)

    try:
        for module in model.modules():
            if isinstance(module, KNOWN):
                handles.append(module.register_forward_pre_hook(keep_input))
                handles.append(module.register_forward_hook(rescale))
        yield
    finally:
        for handle in handles:
            handle.remove()
        saved.clear()
