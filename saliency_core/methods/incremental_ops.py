"""Building blocks of exact incremental occlusion (see incremental.py): regions, gathers and the op rules.

A ``Region`` is one node's activation for a batch of occluded images, stored as the cached unoccluded
activation plus, per window, a rectangle of new values. All rectangles of a node share one size and lie inside
the map, so a whole batch moves through each op as one tensor, with no Python loop over windows.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair


@dataclass
class Region:
    """Per window b: ``full`` with ``[start[b,0] : +size[0], start[b,1] : +size[1]]`` replaced by values[b]."""

    full: torch.Tensor  # [1, C, H, W], the unoccluded activation (never written to)
    start: torch.Tensor  # [B, 2] int64, row and column of each window's rectangle
    size: tuple[int, int]
    values: torch.Tensor  # [B, C, h, w]
    key: str  # the node's name, for the padded-copy cache


class Padded:
    """Per cached activation (and padding), a channels-last table [positions + spare, C]: the padded map,
    made once per plan, then room where each batch writes its new values, so that one ``index_select``
    gathers crops with the new values laid over."""

    def __init__(self) -> None:
        self._store: dict[tuple[str, float, tuple[int, ...]], torch.Tensor] = {}

    def get(
        self, key: str, full: torch.Tensor, pad: float, margins: tuple[int, int, int, int], spare: int
    ) -> torch.Tensor:
        """The table of ``full`` [1, C, H, W] padded by ``margins`` (top, bottom, left, right) with ``pad``,
        with at least ``spare`` free rows after the map's positions."""
        k = (key, pad, margins)
        table = self._store.get(k)
        top, bottom, left, right = margins
        positions = (full.shape[2] + top + bottom) * (full.shape[3] + left + right)
        if table is None or table.shape[0] < positions + spare:
            hwc = full[0].permute(1, 2, 0)
            if any(margins):
                hwc = F.pad(hwc, (0, 0, left, right, top, bottom), value=pad)
            table = torch.empty(
                positions + max(spare, 1), full.shape[1], dtype=full.dtype, device=full.device
            )
            table[:positions] = hwc.reshape(positions, -1)
            self._store[k] = table
        return table


def fit(lo: torch.Tensor, hi: torch.Tensor, limit: int, most: int = 0) -> tuple[torch.Tensor, int]:
    """Clip per-window spans [lo, hi] (inclusive) to [0, limit) and give them one common length, shifting
    starts back where needed so that every rectangle stays inside the map and still covers its span.

    With ``most`` > 0, a clipped span longer than that keeps only its ``most`` middle positions."""
    lo, hi = lo.clamp(min=0), hi.clamp(max=limit - 1)
    if most > 0:
        lo = torch.maximum(lo, torch.div(lo + hi, 2, rounding_mode="floor") - (most - 1) // 2)
        hi = torch.minimum(hi, lo + most - 1)
    n = int((hi - lo + 1).max().clamp(min=1))
    return lo.clamp(max=limit - n), n


def gather(
    src: Region | None,
    full: torch.Tensor,
    key: str,
    start: torch.Tensor,
    size: tuple[int, int],
    padded: Padded,
    pad: float = 0.0,
    margins: tuple[int, int, int, int] = (0, 0, 0, 0),
) -> torch.Tensor:
    """Per window, the rectangle at ``start`` (may reach ``margins`` past the map, where ``pad`` fills it)
    of ``full`` with ``src``'s new values laid over: [B, C, h, w] (channels-last memory)."""
    h, w = size
    if src is not None and src.size == size and torch.equal(src.start, start):
        return src.values  # the rectangle is exactly the source's: nothing to gather
    top, bottom, left, right = margins
    batch, channels = start.shape[0], full.shape[1]
    wp = full.shape[3] + left + right
    positions = (full.shape[2] + top + bottom) * wp
    dev = start.device
    rows = start[:, 0:1] + torch.arange(h, device=dev)  # [B, h] in map coordinates
    cols = start[:, 1:2] + torch.arange(w, device=dev)
    index = (rows + top)[:, :, None] * wp + (cols + left)[:, None, :]  # [B, h, w] into the padded map
    spare = 0 if src is None else batch * src.size[0] * src.size[1]
    table = padded.get(key, full, pad, margins, spare)
    if src is not None:
        vh, vw = src.size
        table[positions : positions + spare].view(batch, vh, vw, channels).copy_(
            src.values.permute(0, 2, 3, 1)
        )
        vi, vj = rows - src.start[:, 0:1], cols - src.start[:, 1:2]
        inside = ((vi >= 0) & (vi < vh))[:, :, None] & ((vj >= 0) & (vj < vw))[:, None, :]
        b = torch.arange(batch, device=dev)[:, None, None] * (vh * vw) + positions
        new = b + vi.clamp(0, vh - 1)[:, :, None] * vw + vj.clamp(0, vw - 1)[:, None, :]
        index = torch.where(inside, new, index)
    crop = table.index_select(0, index.reshape(-1)).view(batch, h, w, channels)
    return crop.permute(0, 3, 1, 2)


def materialise(value: Any, batch: int) -> Any:
    """A Region as a dense [B, C, H, W] tensor; anything else unchanged."""
    if not isinstance(value, Region):
        return value
    out = value.full.repeat(batch, 1, 1, 1)  # a copy even when batch is 1: the cache stays intact
    h, w = value.size
    dev = value.start.device
    rows = (value.start[:, 0:1] + torch.arange(h, device=dev))[:, :, None]
    cols = (value.start[:, 1:2] + torch.arange(w, device=dev))[:, None, :]
    b = torch.arange(batch, device=dev)[:, None, None]
    out.permute(0, 2, 3, 1)[b, rows, cols] = value.values.permute(0, 2, 3, 1)
    return out


def finish(full: torch.Tensor, key: str, start: torch.Tensor, values: torch.Tensor) -> Region | torch.Tensor:
    """A Region, or a plain dense tensor once the rectangles cover the whole map."""
    size = (values.shape[-2], values.shape[-1])
    if size == tuple(full.shape[-2:]):
        return values
    return Region(full, start, size, values, key)


# --- sliding-window ops: Conv2d, MaxPool2d, AvgPool2d ------------------------------------------------
@dataclass(frozen=True)
class Window:
    """The geometry of a sliding-window op and how to run it on a crop with padding=0."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    pad: float  # what padding means: 0 for conv and average pooling, -inf for max pooling
    run: Callable[[torch.Tensor], torch.Tensor]  # on a gathered crop, padding=0
    dense: Callable[[torch.Tensor], torch.Tensor]  # on whole maps, with the op's own padding


def window_of(module: nn.Module) -> Window | str:
    """The Window of a supported module, else why it is not supported."""
    if type(module) is nn.Conv2d:
        if module.padding_mode != "zeros":
            return f"padding mode {module.padding_mode!r}"
        if isinstance(module.padding, str):
            if module.padding != "valid":
                return "padding='same'"
            padding = (0, 0)
        else:
            padding = _pair(module.padding)
        # Crops are channels-last; weights kept in that layout are not converted again on every call.
        weight, bias, stride, dilation, groups = (
            module.weight.detach().contiguous(memory_format=torch.channels_last),
            module.bias,
            module.stride,
            module.dilation,
            module.groups,
        )

        def conv(t: torch.Tensor) -> torch.Tensor:
            return F.conv2d(t, weight, bias, stride, 0, dilation, groups)

        return Window(_pair(module.kernel_size), _pair(stride), padding, _pair(dilation), 0.0, conv, module)
    if type(module) is nn.MaxPool2d:
        if module.return_indices:
            return "max pooling that returns indices"
        k, s, d = _pair(module.kernel_size), _pair(module.stride), _pair(module.dilation)

        def maxpool(t: torch.Tensor) -> torch.Tensor:
            return F.max_pool2d(t, k, s, 0, d)

        return Window(k, s, _pair(module.padding), d, float("-inf"), maxpool, module)
    if type(module) is nn.AvgPool2d:
        padding = _pair(module.padding)
        if module.ceil_mode or (any(padding) and not module.count_include_pad):
            return "average pooling with ceil_mode or excluded padding"  # divisors vary at the edges
        k, s, div = _pair(module.kernel_size), _pair(module.stride), module.divisor_override

        def avgpool(t: torch.Tensor) -> torch.Tensor:
            return F.avg_pool2d(t, k, s, 0, False, True, div)

        return Window(k, s, padding, (1, 1), 0.0, avgpool, module)
    return "not a sliding-window module"


def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> Window:
    """The Window of conv followed by an eval-mode BatchNorm, as one conv: one op fewer per layer."""
    win = window_of(conv)
    assert isinstance(win, Window)
    scale = (
        bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else torch.rsqrt(bn.running_var + bn.eps)
    )
    shift = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    weight = (conv.weight * scale.reshape(-1, 1, 1, 1)).detach().contiguous(memory_format=torch.channels_last)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    bias = (shift + (bias - bn.running_mean) * scale).detach()
    stride, dilation, groups = conv.stride, conv.dilation, conv.groups

    def run(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, weight, bias, stride, 0, dilation, groups)

    def dense(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, weight, bias, stride, win.padding, dilation, groups)

    return Window(win.kernel, win.stride, win.padding, win.dilation, 0.0, run, dense)


def apply_window(
    win: Window, src: Region, out_full: torch.Tensor, key: str, padded: Padded, cap: float = 1.0
) -> Region | torch.Tensor:
    """Recompute the outputs whose receptive field meets ``src``'s rectangles; with ``cap`` < 1, at most
    that share of the map along each axis, centred on the span (approximate: Krypton's projective-field
    threshold, the outputs beyond it keep their unoccluded values)."""
    starts, sizes, crop_start, crop_size, margins = [], [], [], [], []
    for axis in (0, 1):
        k, s, p, d = win.kernel[axis], win.stride[axis], win.padding[axis], win.dilation[axis]
        n_in, n_out = src.full.shape[2 + axis], out_full.shape[2 + axis]
        a = src.start[:, axis]
        span = d * (k - 1)
        # Output o reads inputs [o*s - p, o*s - p + span]: it meets [a, a + size - 1] when
        # ceil((a + p - span) / s) <= o <= floor((a + size - 1 + p) / s).
        lo = -torch.div(-(a + p - span), s, rounding_mode="floor")
        hi = torch.div(a + src.size[axis] - 1 + p, s, rounding_mode="floor")
        o, n = fit(lo, hi, n_out, max(1, math.ceil(cap * n_out)) if cap < 1.0 else 0)
        starts.append(o)
        sizes.append(n)
        crop_start.append(o * s - p)
        crop_size.append((n - 1) * s + span + 1)
        margins += [p, max(0, (n_out - 1) * s - p + span - (n_in - 1))]
    crop = gather(
        src,
        src.full,
        src.key,
        torch.stack(crop_start, 1),
        (crop_size[0], crop_size[1]),
        padded,
        win.pad,
        (margins[0], margins[1], margins[2], margins[3]),
    )
    return finish(out_full, key, torch.stack(starts, 1), win.run(crop))


# --- element-wise ops -----------------------------------------------------------------------------
POINTWISE_MODULES = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.SiLU,
    nn.GELU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Identity,
)
# In-place forms map to out-of-place ones: region values may be shared with another node's rectangle.
POINTWISE_FUNCTIONS: dict[Any, Any] = {
    operator.add: operator.add,
    operator.sub: operator.sub,
    operator.mul: operator.mul,
    operator.truediv: operator.truediv,
    operator.iadd: operator.add,
    operator.isub: operator.sub,
    operator.imul: operator.mul,
    operator.itruediv: operator.truediv,
    torch.add: torch.add,
    torch.sub: torch.sub,
    torch.mul: torch.mul,
    torch.div: torch.div,
    torch.relu: torch.relu,
    torch.sigmoid: torch.sigmoid,
    torch.tanh: torch.tanh,
    F.relu: F.relu,
    F.relu6: F.relu6,
    F.leaky_relu: F.leaky_relu,
    F.hardswish: F.hardswish,
    F.hardsigmoid: F.hardsigmoid,
    F.silu: F.silu,
    F.gelu: F.gelu,
    F.elu: F.elu,
}
CHANNEL_FUNCTIONS = (torch.cat, torch.concat)  # along dim 1 only: the spatial layout is untouched
POINTWISE_METHODS = {
    "relu": "relu",
    "relu_": "relu",
    "sigmoid": "sigmoid",
    "sigmoid_": "sigmoid",
    "tanh": "tanh",
    "add": "add",
    "add_": "add",
    "sub": "sub",
    "sub_": "sub",
    "mul": "mul",
    "mul_": "mul",
    "div": "div",
    "div_": "div",
    "contiguous": "contiguous",
    "clone": "clone",
}


def pointwise_module(module: nn.Module) -> bool:
    """Whether the module acts on each position alone, with no batch statistics or randomness."""
    if isinstance(module, POINTWISE_MODULES):
        return True  # PReLU's weights are per channel: still per position
    if isinstance(module, nn.BatchNorm2d):
        return not module.training and module.track_running_stats and module.running_mean is not None
    if isinstance(module, (nn.Dropout, nn.Dropout2d)):
        return not module.training
    return False


def small_static(t: Any) -> bool:
    """A constant operand that broadcasts the same way on a rectangle as on the whole map."""
    return not isinstance(t, torch.Tensor) or t.numel() == 1 or (t.dim() == 4 and t.shape[-2:] == (1, 1))


def union(regions: list[Region], full: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """One rectangle per window covering every region's rectangle, inside the map."""
    starts, sizes = [], []
    for axis in (0, 1):
        lo = torch.stack([r.start[:, axis] for r in regions]).amin(0)
        hi = torch.stack([r.start[:, axis] + r.size[axis] - 1 for r in regions]).amax(0)
        o, n = fit(lo, hi, full.shape[2 + axis])
        starts.append(o)
        sizes.append(n)
    return torch.stack(starts, 1), (sizes[0], sizes[1])
