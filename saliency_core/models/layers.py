"""Layers of architectures nobody registered by hand: output shapes from one probe pass, CAM defaults,
the classifier head, and token / channels-last outputs read as spatial grids [N, C, h, w]."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from ..hooks import ReshapeFn, first_tensor

Shapes = dict[str, "tuple[int, ...] | None"]
DEFAULTS = 4  # CAM layer suggestions per model


def to_grid(
    t: torch.Tensor, grid: tuple[int, int] | None = None, prefix: int | None = None, nhwc: bool = False
) -> torch.Tensor:
    """A layer output as [N, C, h, w] where it reads as one; otherwise unchanged (the caller says why).

    [N, T, C] tokens: T = h*w, or prefix tokens (class, register, distillation) then h*w, which are
    dropped; h, w from the model's patch grid when known, else a square. [N, h, w, C] (channels last,
    e.g. Swin) is permuted when the model is channels-last and the shape says so.
    """
    if t.ndim == 4 and nhwc and t.shape[1] == t.shape[2] and t.shape[2] != t.shape[3]:
        return t.permute(0, 3, 1, 2)
    if t.ndim != 3:
        return t
    n, tokens, channels = t.shape
    for skip in _prefix_candidates(tokens, prefix):
        size = tokens - skip
        if grid is not None and grid[0] * grid[1] == size:
            h, w = grid
        else:
            h = w = math.isqrt(size)
            if h < 2 or h * w != size:
                continue
        return t[:, skip:, :].reshape(n, h, w, channels).permute(0, 3, 1, 2)
    return t


def _prefix_candidates(tokens: int, prefix: int | None) -> list[int]:
    # The model's own count of class / register / distillation tokens first; else none, or a class token.
    known = [prefix] if prefix is not None else []
    return [p for p in dict.fromkeys((*known, 0, 1)) if p < tokens]


def grid_reshape(grid: tuple[int, int] | None, prefix: int | None, nhwc: bool) -> Callable[[str], ReshapeFn]:
    """A ModelSpec `reshape` hook: every layer read through `to_grid` with the model's geometry."""
    fn = partial(to_grid, grid=grid, prefix=prefix, nhwc=nhwc)
    return lambda _layer: fn


def build_probe(build: Callable[[], nn.Module]) -> nn.Module:
    """The architecture on the meta device (no memory, no init cost) when it builds there, else on the CPU."""
    try:
        with torch.device("meta"):  # a thread-local mode: other threads keep building real tensors
            return build().eval()
    except Exception:  # builders that compute values at init (e.g. RegNet's widths) need real tensors
        return build().eval()


def output_shapes(
    module: nn.Module, x: torch.Tensor, call: Callable[[torch.Tensor], object] | None = None
) -> Shapes:
    """Every named submodule's output shape from one forward pass (None: not called, or not a tensor);
    a module returning a dict, tuple or list also gets "name:key" entries, one per tensor in it."""
    shapes: Shapes = {name: None for name, _ in module.named_modules() if name}
    handles = []

    def hook(name: str) -> Callable[..., None]:
        def record(_mod: nn.Module, _inputs: object, output: object) -> None:
            tensor = first_tensor(output)
            if tensor is not None and shapes.get(name) is None:
                shapes[name] = tuple(int(s) for s in tensor.shape)
            items = (
                output.items()
                if isinstance(output, dict)
                else enumerate(output)
                if isinstance(output, (tuple, list))
                else ()
            )
            for key, value in items:
                if isinstance(value, torch.Tensor):
                    shapes.setdefault(f"{name}:{key}", tuple(int(s) for s in value.shape))

        return record

    try:
        for name, sub in module.named_modules():
            if name:
                handles.append(sub.register_forward_hook(hook(name)))
        with torch.no_grad():
            (call or module)(x)
    finally:
        for handle in handles:
            handle.remove()
    return shapes


def probe_shapes(module: nn.Module, size: tuple[int, int]) -> Shapes:
    """Output shapes for one image of `size` on the module's device; {} when the pass fails (a meta
    module whose forward needs real values, as detectors' box decoding does)."""
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    try:
        return output_shapes(module, torch.zeros(1, 3, *size, device=device))
    except Exception:
        return {}


def is_grid(shape: tuple[int, ...] | None, reshape: ReshapeFn) -> bool:
    """Whether an output of this shape reads as a spatial map larger than 1x1."""
    if shape is None:
        return False
    out = reshape(torch.empty(shape, device="meta"))
    return out.ndim == 4 and out.shape[2] * out.shape[3] > 1


def transformer_blocks(module: nn.Module, shapes: Shapes) -> list[str]:
    """Names of a plain ViT's blocks in order (a container of blocks with a pre-norm and attention,
    outputting tokens [N, T, C]); [] for other architectures (Swin's blocks output grids)."""
    for name, sub in module.named_modules():
        children = list(sub.named_children())
        if len(children) < 2 or not all(_is_block(c) for _, c in children):
            continue
        names = [f"{name}.{n}" if name else n for n, _ in children]
        shape = shapes.get(names[-1])
        if shape is not None and len(shape) == 3:
            return names
    return []


def _is_block(module: nn.Module) -> bool:
    norm = getattr(module, "norm1", None) or getattr(module, "ln_1", None)
    attn = getattr(module, "attn", None) or getattr(module, "self_attention", None)
    return isinstance(norm, nn.Module) and isinstance(attn, nn.Module)


def block_norms(blocks: list[str], module: nn.Module) -> list[str]:
    """The pre-attention norms of the last blocks (as pytorch-grad-cam suggests for ViTs), deepest first."""
    picks = [blocks[i] for i in (-1, -2, -4, -6) if len(blocks) >= -i]
    norm = "norm1" if hasattr(module.get_submodule(blocks[-1]), "norm1") else "ln_1"
    return [f"{b}.{norm}" for b in picks]


def guess_layers(
    module: nn.Module, shapes: Shapes, reshape: ReshapeFn, stages: list[str] | None = None
) -> list[str]:
    """CAM layer suggestions, the default first: the last blocks' norms of a ViT, else the model's
    stages (timm's feature_info, or the blocks found by `_stage_candidates`), deepest first, one per
    grid resolution where the probe measured them."""
    # A ViT's stages are its token blocks; a hybrid whose stages output grids (MobileViT) keeps them.
    last_stage = shapes.get(stages[-1]) if stages else None
    blocks = transformer_blocks(module, shapes) if last_stage is None or len(last_stage) == 3 else []
    if blocks:
        return block_norms(blocks, module)
    candidates = list(reversed(stages)) if stages else _stage_candidates(module, shapes, reshape)
    if shapes:
        candidates = [c for c in candidates if is_grid(shapes.get(c), reshape)]
        if not candidates:  # modules that are not torch.nn classes (an unflattened program): outputs alone
            candidates = [n for n in reversed(list(shapes)) if "." not in n and is_grid(shapes[n], reshape)]
        seen: set[tuple[int, int]] = set()
        candidates = [
            c
            for c in candidates
            if not (_side(shapes[c], reshape) in seen or seen.add(_side(shapes[c], reshape)))
        ]
    return candidates[:DEFAULTS]


def _side(shape: tuple[int, ...] | None, reshape: ReshapeFn) -> tuple[int, int]:
    out = reshape(torch.empty(shape or (), device="meta"))
    return (int(out.shape[2]), int(out.shape[3])) if out.ndim == 4 else (0, 0)


_NORMS = (nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)
_PLUMBING = (
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.Dropout,
    nn.Identity,
    nn.Flatten,
)


def _stage_candidates(module: nn.Module, shapes: Shapes, reshape: ReshapeFn) -> list[str]:
    """Blocks that output spatial maps, deepest first: the top-level ones, with a container spanning
    several resolutions (torchvision's `features`, RegNet's `trunk_output`) replaced by its children.
    Without measured shapes: top-level blocks holding convolutions, one level down if only one does."""

    def spatial(name: str, child: nn.Module) -> bool:
        if not shapes:
            return any(isinstance(m, nn.Conv2d) for m in child.modules())
        if shapes.get(name) is None:  # a ModuleList is never called itself: its children are
            return any(is_grid(shapes.get(f"{name}.{n}"), reshape) for n, _ in child.named_children())
        return is_grid(shapes[name], reshape) and not isinstance(child, _PLUMBING)

    def children(prefix: str, parent: nn.Module) -> list[tuple[str, nn.Module]]:
        named = [(f"{prefix}{n}", c) for n, c in parent.named_children()]
        if not prefix:  # top level: blocks, not the norm, permute or pooling on the way to the head
            named = [(n, c) for n, c in named if _has_params(c) and not isinstance(c, _NORMS)]
        return [(n, c) for n, c in named if spatial(n, c)]

    found = children("", module)
    if not shapes:
        if len(found) == 1:
            found = children(f"{found[0][0]}.", found[0][1]) or found
        return [n for n, _ in reversed(found)]
    expanded: list[tuple[str, nn.Module]] = []
    for name, child in found:
        # A sequence of stages (torchvision's `features`, RegNet's `trunk_output`, MaxViT's `blocks`)
        # stands for its children; a block whose branches differ in resolution (Inception) does not.
        inner = children(f"{name}.", child) if isinstance(child, (nn.Sequential, nn.ModuleList)) else []
        sides = {_side(shapes.get(n), reshape) for n, _ in inner}
        spans = len(inner) > 1 and (len(sides) > 1 or shapes.get(name) is None)
        expanded += inner if spans else [(name, child)]
    found = expanded
    return [n for n, _ in reversed(found)]


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def find_classifier(module: nn.Module, classes: int) -> str | None:
    """The last linear (or 1x1 conv) layer with one output per class: the head a checkpoint sizes."""
    found = None
    for name, sub in module.named_modules():
        linear = isinstance(sub, nn.Linear) and sub.out_features == classes
        conv = isinstance(sub, nn.Conv2d) and sub.out_channels == classes and sub.kernel_size == (1, 1)
        if linear or conv:
            found = name
    return found


def cam_head_for(module: nn.Module, classifier: str | None, layer: str | None, shapes: Shapes) -> str | None:
    """The classifier as CAM's head when it is a top-level linear layer reading the default layer's
    channels after global pooling (a hidden layer or norm in between would make CAM's sum wrong)."""
    if classifier is None or layer is None or "." in classifier:
        return None
    head = module.get_submodule(classifier)
    shape = shapes.get(layer)
    if not isinstance(head, nn.Linear) or shape is None or len(shape) != 4:
        return None
    return classifier if shape[1] == head.in_features else None


def zero_head(module: nn.Module, name: str | None) -> bool:
    """Whether the named head's weight is all zeros (torchvision's ViT heads start so: no gradients)."""
    head = dict(module.named_modules()).get(name) if name else None
    weight = getattr(head, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.numel() == 0 or weight.is_meta:
        return False
    return not bool(weight.detach().any())


@dataclass(frozen=True)
class LayerOption:
    """One layer for a CAM layer picker: its output shape, the [C, h, w] map CAM methods read from it
    (None: it cannot be read as a spatial grid, `note` says why) and whether it is a suggested default."""

    name: str
    shape: tuple[int, ...] | None
    grid: tuple[int, int, int] | None
    suggested: bool
    note: str = ""

    def describe(self) -> str:
        """E.g. "layer4 · 512×7×7", "blocks.11.norm1 · 197 tokens × 192 → 192×14×14", "fc · 1000 · not
        a spatial map"."""
        if self.grid is not None:
            c, h, w = self.grid
            shown = f"{c}×{h}×{w}"
            if self.shape is not None and len(self.shape) == 3:
                shown = f"{self.shape[1]} tokens × {self.shape[2]} → {shown}"
            elif self.shape is not None and self.shape[1:] != self.grid:
                shown = f"{'×'.join(map(str, self.shape[1:]))} → {shown}"
            return f"{self.name} · {shown}"
        size = "×".join(map(str, self.shape[1:])) if self.shape else ""
        return " · ".join(p for p in (self.name, size, self.note) if p)


def layer_options(
    tree: list[tuple[str, tuple[int, ...] | None]],
    suggested: set[str],
    reshape_for: Callable[[str], ReshapeFn | None],
) -> list[LayerOption]:
    """Every layer of a tree (from one probe pass) with how a CAM method would read it."""
    tokens = {s[1] for _, s in tree if s is not None and len(s) == 3}
    return [_option(name, shape, name in suggested, reshape_for(name), tokens) for name, shape in tree]


def _option(
    name: str, shape: tuple[int, ...] | None, suggested: bool, reshape: ReshapeFn | None, tokens: set[int]
) -> LayerOption:
    if shape is None:
        return LayerOption(name, None, None, suggested, "not called in a forward pass, or no tensor output")
    if len(shape) == 4 and shape[2] in tokens and shape[2] != shape[3]:
        # A ViT's attention internals [N, heads, tokens, dims] are 4-D but not an image grid.
        return LayerOption(name, shape, None, suggested, "per-head tokens, not a spatial map")
    out = (reshape or (lambda t: t))(torch.empty(shape, device="meta"))
    if out.ndim != 4:
        why = "tokens that do not form a grid" if len(shape) == 3 else "not a spatial map"
        return LayerOption(name, shape, None, suggested, why)
    c, h, w = (int(s) for s in out.shape[1:])
    if h * w <= 1:
        return LayerOption(name, shape, None, suggested, "1×1: no spatial extent")
    return LayerOption(name, shape, (c, h, w), suggested)
