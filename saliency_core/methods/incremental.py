"""Exact incremental occlusion (Krypton: Nakandala et al., SIGMOD 2019).

An occluding window changes only the part of each feature map that its receptive field reaches. ``plan``
traces the model with torch.fx, runs the unoccluded image once and keeps every node's activation; then
``IncrementalPlan.outputs`` pushes a batch of windows through the graph, recomputing per node only the
rectangle the windows can reach (convolutions and pooling on gathered crops, element-wise ops on the
rectangles) and falling back to ordinary dense tensors where an op mixes the whole map (global pooling,
flatten, linear, unknown ops). The outputs equal ``module(occluded batch)`` up to float rounding.

    p = plan(model, x)                   # IncrementalPlan, or a str saying why not
    if not isinstance(p, str):
        logits = p.outputs([(0, 0), (0, 16)], patch=32, baseline=torch.zeros_like(x))
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.utils._pytree import tree_flatten, tree_map

from . import incremental_ops as ops
from .incremental_ops import Padded, Region


class Static:
    """A node whose value does not depend on the input: the cached activation serves every window."""

    __slots__ = ("key", "value")

    def __init__(self, value: Any, key: str) -> None:
        self.value, self.key = value, key


def _is_inplace(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return getattr(modules[node.target], "inplace", False) is True
    if node.op == "call_method":
        return node.target.endswith("_") and not node.target.endswith("__")
    if node.op == "call_function":
        name = getattr(node.target, "__name__", "")
        return (
            node.kwargs.get("inplace") is True
            or (name.endswith("_") and not name.endswith("__"))
            or (name.startswith("i") and getattr(node.target, "__module__", "") in ("_operator", "operator"))
        )
    return False


def _call(node: fx.Node, modules: dict[str, nn.Module], args: tuple, kwargs: dict) -> Any:
    if node.op == "call_module":
        return modules[node.target](*args, **kwargs)
    if node.op == "call_function":
        return node.target(*args, **kwargs)
    return getattr(args[0], node.target)(*args[1:], **kwargs)


def _describe(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    if node.op == "call_module":
        return f"{node.target} ({type(modules[node.target]).__name__})"
    what = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))
    return f"{node.name} ({what})"


class IncrementalPlan:
    """A traced model with the unoccluded image's activations, ready to evaluate batches of occlusions."""

    def __init__(self, gm: fx.GraphModule, x: torch.Tensor, cache: dict[fx.Node, Any]) -> None:
        self.cap = 1.0  # < 1: approximate, regions at most this share of each map's side (apply_window)
        self.reason = ""  # "" when fully incremental, else a note on where it fell back to dense passes
        self._lock = threading.Lock()  # a pass writes into the padded tables' spare rows
        self._gm, self._x, self._cache = gm, x, cache
        self._modules = dict(gm.named_modules())
        self._nodes = list(gm.graph.nodes)
        self._padded = Padded()
        self._fallbacks: dict[str, None] = {}
        self.last_regions: dict[str, tuple[torch.Tensor, tuple[int, int]] | None] = {}
        inputs = {n for n in self._nodes if n.op == "placeholder"}
        self._varying = {n: n in inputs for n in self._nodes}
        for n in self._nodes:
            if n.op != "placeholder":
                self._varying[n] = any(self._varying[a] for a in n.all_input_nodes)
        self._last_use = {}
        for i, n in enumerate(self._nodes):
            for a in n.all_input_nodes:
                self._last_use[a] = i
        self._windows: dict[fx.Node, ops.Window] = {}
        self._out_node: dict[fx.Node, fx.Node] = {}  # a conv's output is its folded BatchNorm's
        self._alias: dict[fx.Node, fx.Node] = {}  # a folded BatchNorm -> its conv
        for n in self._nodes:
            if n.op == "call_module" and self._varying[n]:
                win = ops.window_of(self._modules[n.target])
                if isinstance(win, ops.Window) and len(n.args) == 1 and not n.kwargs:
                    self._windows[n] = win
                    bn = next(iter(n.users)) if len(n.users) == 1 else None
                    if (
                        bn is not None
                        and bn.op == "call_module"
                        and isinstance(self._modules[bn.target], nn.BatchNorm2d)
                        and ops.pointwise_module(self._modules[bn.target])
                        and bn.args == (n,)
                        and not bn.kwargs
                        and isinstance(self._modules[n.target], nn.Conv2d)
                    ):
                        self._windows[n] = ops.fold_batchnorm(
                            self._modules[n.target], self._modules[bn.target]
                        )
                        self._out_node[n], self._alias[bn] = bn, n

    def cache_bytes(self) -> int:
        """Memory this plan holds once used: the activations, and about as much again for their padded
        tables and folded weights."""
        return 2 * sum(
            v.numel() * v.element_size() for v in self._cache.values() if isinstance(v, torch.Tensor)
        )

    def work_share(self) -> float:
        """Of a full pass's convolution multiply-adds, the share the last ``outputs`` call recomputed per
        window (1.0: nothing saved, as when every region spans its whole map)."""
        total = done = 0.0
        for node in self._nodes:
            if node.op != "call_module" or not isinstance(self._modules[node.target], nn.Conv2d):
                continue
            full = self._cache[self._out_node.get(node, node)]
            if not isinstance(full, torch.Tensor) or full.dim() != 4:
                continue
            area = full.shape[-2] * full.shape[-1]
            cost = self._modules[node.target].weight.numel() * area
            region = self.last_regions.get(node.name)
            total += cost
            done += cost if region is None else cost * min(1.0, region[1][0] * region[1][1] / area)
        return done / total if total else 1.0

    @property
    def saves_work(self) -> bool:
        """Whether any convolution or pooling layer is recomputed on regions (else it is plain occlusion)."""
        return bool(self._windows)

    # --- the public call -----------------------------------------------------------------------------
    def outputs(self, starts: Sequence[tuple[int, int]], patch: int, baseline: torch.Tensor) -> torch.Tensor:
        """The module's outputs [B, ...] on x with each window (y, x, patch x patch) replaced by baseline's
        pixels (baseline [1, C, H, W]; windows hanging over the bottom / right edge are clipped)."""
        with self._lock, torch.no_grad():
            start = torch.as_tensor(list(starts), dtype=torch.long, device=self._x.device).reshape(-1, 2)
            first = self._input_region(start, int(patch), baseline.to(self._x))
            return self._run(first, start.shape[0])

    def _input_region(self, start: torch.Tensor, patch: int, baseline: torch.Tensor) -> Region | torch.Tensor:
        x = self._x
        h, w = x.shape[-2:]
        size = (min(patch, h), min(patch, w))
        rect = torch.stack([start[:, 0].clamp(max=h - size[0]), start[:, 1].clamp(max=w - size[1])], 1)
        rows = rect[:, 0:1] + torch.arange(size[0], device=x.device)
        cols = rect[:, 1:2] + torch.arange(size[1], device=x.device)
        inside = ((rows >= start[:, 0:1]) & (rows < start[:, 0:1] + patch))[:, :, None] & (
            (cols >= start[:, 1:2]) & (cols < start[:, 1:2] + patch)
        )[:, None, :]
        r, c = rows[:, :, None], cols[:, None, :]
        image = x[0].permute(1, 2, 0)[r, c]  # [B, h, w, C]
        hidden = baseline[0].permute(1, 2, 0)[r, c]
        values = torch.where(inside[..., None], hidden, image).permute(0, 3, 1, 2).contiguous()
        placeholder = next(n for n in self._nodes if n.op == "placeholder")
        return ops.finish(x, placeholder.name, rect, values)

    # --- the incremental pass ------------------------------------------------------------------------
    def _run(self, first: Region | torch.Tensor, batch: int) -> Any:
        env: dict[fx.Node, Any] = {}
        dense: dict[fx.Node, torch.Tensor] = {}
        self.last_regions = {}

        def look(a: Any) -> Any:
            if isinstance(a, fx.Node):
                return env[a] if self._varying[a] else Static(self._cache[a], a.name)
            return a

        result: Any = None
        for i, node in enumerate(self._nodes):
            if node.op == "placeholder":
                env[node] = first
            elif node.op == "output":
                out = tree_map(look, node.args[0])
                result = tree_map(lambda v: self._plain(v, batch, None, dense), out)
            elif node in self._alias:
                env[node] = env[self._alias[node]]
            elif self._varying[node]:
                args, kwargs = tree_map(look, node.args), tree_map(look, node.kwargs)
                value = self._incremental(node, args, kwargs)
                if value is None:
                    value = self._dense(node, args, kwargs, batch, dense)
                env[node] = value
                self.last_regions[node.name] = (
                    (value.start, value.size) if isinstance(value, Region) else None
                )
            for a in node.all_input_nodes:  # free what no later node reads
                if self._last_use.get(a) == i:
                    env.pop(a, None)
                    dense.pop(a, None)
        return result

    def _plain(self, v: Any, batch: int, node: fx.Node | None, dense: dict) -> Any:
        """A Static or Region as an ordinary value (a Region materialised once per pass)."""
        if isinstance(v, Static):
            if isinstance(v.value, torch.Tensor) and node is not None and _is_inplace(node, self._modules):
                return v.value.clone()  # the op would write into the cache
            return v.value
        if isinstance(v, Region):
            return ops.materialise(v, batch)
        return v

    def _dense(self, node: fx.Node, args: tuple, kwargs: dict, batch: int, dense: dict) -> Any:
        leaves, _ = tree_flatten((args, kwargs))
        if any(isinstance(v, Region) for v in leaves) and not any(
            isinstance(v, torch.Tensor) for v in leaves
        ):
            self._fallbacks[_describe(node, self._modules)] = None
        first = [True]

        def plain(v: Any) -> Any:
            node_arg = node if first[0] else None  # only the first operand is written by in-place ops
            first[0] = False
            return self._plain(v, batch, node_arg, dense)

        return _call(node, self._modules, tree_map(plain, args), tree_map(plain, kwargs))

    def _incremental(self, node: fx.Node, args: tuple, kwargs: dict) -> Region | torch.Tensor | None:
        """The node on rectangles, or None where it must run densely."""
        out_node = self._out_node.get(node, node)
        out_full = self._cache[out_node]
        if not isinstance(out_full, torch.Tensor) or out_full.dim() != 4:
            return None
        win = self._windows.get(node)
        if win is not None:
            src = args[0]
            if isinstance(src, Region):
                return ops.apply_window(win, src, out_full, out_node.name, self._padded, self.cap)
            return win.dense(src) if isinstance(src, torch.Tensor) else None
        if node.op == "call_module":
            if not ops.pointwise_module(self._modules[node.target]):
                return None
            fn: Any = self._modules[node.target]
        elif node.op == "call_function" and node.target in ops.POINTWISE_FUNCTIONS:
            fn = ops.POINTWISE_FUNCTIONS[node.target]
            kwargs = {k: (False if k == "inplace" else v) for k, v in kwargs.items()}
        elif node.op == "call_function" and node.target in ops.CHANNEL_FUNCTIONS:
            dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
            if dim not in (1, -3):
                return None
            fn = node.target
        elif node.op == "call_method" and node.target in ops.POINTWISE_METHODS:
            name = ops.POINTWISE_METHODS[node.target]

            def fn(t: Any, *rest: Any, **kw: Any) -> Any:
                return getattr(t, name)(*rest, **kw)

        else:
            return None
        return self._pointwise(node, fn, args, kwargs, out_full)

    def _pointwise(self, node: fx.Node, fn: Any, args: tuple, kwargs: dict, out_full: torch.Tensor) -> Any:
        leaves, _ = tree_flatten((args, kwargs))
        regions = [v for v in leaves if isinstance(v, Region)]
        if not regions or any(isinstance(v, torch.Tensor) for v in leaves):
            return None  # a dense operand makes the output dense anyway
        spatial = regions[0].full.shape[-2:]
        if out_full.shape[-2:] != spatial or any(r.full.shape[-2:] != spatial for r in regions):
            return None
        for v in leaves:
            if (
                isinstance(v, Static)
                and not ops.small_static(v.value)
                and not (
                    isinstance(v.value, torch.Tensor) and v.value.dim() == 4 and v.value.shape[-2:] == spatial
                )
            ):
                return None
        start, size = (
            (regions[0].start, regions[0].size) if len(regions) == 1 else ops.union(regions, out_full)
        )

        def crop(v: Any) -> Any:
            if isinstance(v, Region):
                return ops.gather(v, v.full, v.key, start, size, self._padded)
            if isinstance(v, Static):
                if ops.small_static(v.value):
                    return v.value
                return ops.gather(None, v.value, v.key, start, size, self._padded)
            return v

        values = fn(*tree_map(crop, args), **tree_map(crop, kwargs))
        if not isinstance(values, torch.Tensor) or values.shape[-2:] != size:
            return None
        return ops.finish(out_full, node.name, start, values)


def plan(module: nn.Module, x: torch.Tensor) -> IncrementalPlan | str:
    """An IncrementalPlan for ``module`` on the image ``x`` [1, C, H, W], or a str saying why there is none
    (then run plain occlusion)."""
    if x.dim() != 4 or x.shape[0] != 1:
        return "incremental occlusion needs one image [1, C, H, W]"
    try:
        gm = fx.symbolic_trace(module)
    except Exception as exc:  # any tracing failure means: use plain occlusion
        return f"the model cannot be traced with torch.fx ({type(exc).__name__}: {str(exc)[:200]})"
    nodes = list(gm.graph.nodes)
    modules = dict(gm.named_modules())
    if sum(n.op == "placeholder" for n in nodes) != 1:
        return "the model takes more than one input"
    if not any(
        n.op == "call_module" and isinstance(ops.window_of(modules[n.target]), ops.Window) for n in nodes
    ):
        return "the model has no convolution or pooling layer whose work a patch could limit"
    for n in nodes:
        if _is_inplace(n, modules) and n.args and isinstance(n.args[0], fx.Node) and len(n.args[0].users) > 1:
            return f"{_describe(n, modules)} writes in place into a value that other ops also read"
    cache: dict[fx.Node, Any] = {}
    with torch.no_grad():
        x = x.detach()
        for n in nodes:
            if n.op == "placeholder":
                cache[n] = x
                continue
            if n.op == "output":
                continue
            args = fx.node.map_arg(n.args, lambda a: cache[a])
            kwargs = fx.node.map_arg(n.kwargs, lambda a: cache[a])
            if _is_inplace(n, modules) and args and isinstance(args[0], torch.Tensor):
                args = (args[0].clone(), *args[1:])  # keep the cached input as it was
            if n.op == "get_attr":
                target: Any = gm
                for part in n.target.split("."):
                    target = getattr(target, part)
                cache[n] = target
            else:
                cache[n] = _call(n, modules, args, kwargs)
        result = IncrementalPlan(gm, x, cache)
        return _self_check(module, result, x)


def _self_check(module: nn.Module, p: IncrementalPlan, x: torch.Tensor) -> IncrementalPlan | str:
    """One occluded window through both paths: a model whose graph depends on the data fails here."""
    h, w = x.shape[-2:]
    patch = max(1, min(h, w) // 4)
    start = [(max(0, (h - patch) // 2), max(0, (w - patch) // 2))]
    zero = torch.zeros_like(x)
    got = p.outputs(start, patch, zero)
    occluded = x.clone()
    occluded[..., start[0][0] : start[0][0] + patch, start[0][1] : start[0][1] + patch] = 0
    with torch.no_grad():
        want = module(occluded)
    if not isinstance(got, torch.Tensor) or not isinstance(want, torch.Tensor) or got.shape != want.shape:
        return "the model's output is not a single tensor"
    err = float((got - want).norm() / want.norm().clamp(min=1e-12))
    if err > 1e-3:
        return f"the incremental pass disagrees with the model on a test window (relative error {err:.2g})"
    if p._fallbacks:
        p.reason = (
            "Recomputed in full from "
            + ", ".join(list(p._fallbacks)[:3])
            + (" on: these layers mix the whole feature map, so every later layer changes everywhere.")
        )
    return p
