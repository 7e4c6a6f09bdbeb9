"""Each self-attention block's attention probabilities, kept in the autograd graph, inside a `with` block.

Two kinds of attention are found: `nn.MultiheadAttention` (torchvision's ViT, `nn.TransformerEncoderLayer`),
whose forward is replaced for the duration by one that computes the softmax itself (torchvision calls it
with need_weights=False, and the weights it can return are a copy outside the graph of its output), and
timm's `Attention` (any module with `fused_attn`, `qkv` and `attn_drop`), whose fused kernel is switched off
so that `attn_drop` sees the softmaxed attention, read by a forward pre-hook. Everything is restored on exit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..models.layers import to_grid

NOT_A_VIT = "needs a vision transformer with self-attention blocks"


@dataclass(frozen=True)
class Site:
    """One attention module, its kind ("mha" or "timm") and the block holding it (its parent)."""

    name: str
    module: nn.Module
    kind: str
    block: nn.Module


def find_sites(model: nn.Module) -> list[Site]:
    """The self-attention modules whose probabilities can be captured, in forward (registration) order."""
    modules = dict(model.named_modules())
    sites = []
    for name, sub in model.named_modules():
        if isinstance(sub, nn.MultiheadAttention):
            if sub.bias_k is not None or sub.add_zero_attn:
                continue  # extra key/value rows: not a plain token-to-token attention
            kind = "mha"
        elif hasattr(sub, "fused_attn") and isinstance(getattr(sub, "attn_drop", None), nn.Module):
            kind = "timm"
        else:
            continue
        parent = modules.get(name.rpartition(".")[0]) if "." in name else model
        sites.append(Site(name, sub, kind, parent if parent is not None else model))
    return sites


def readout(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """Tokens after any block -> the model's output, through its final norm and head (as after the last
    block), for torchvision's and timm-style ViTs; None when the model's head is unknown."""
    encoder = getattr(model, "encoder", None)
    if hasattr(model, "class_token") and hasattr(model, "heads") and hasattr(encoder, "ln"):
        return lambda z: model.heads(encoder.ln(z)[:, 0])
    if callable(getattr(model, "forward_head", None)) and isinstance(getattr(model, "norm", None), nn.Module):
        return lambda z: model.forward_head(model.norm(z))
    return None


@dataclass(frozen=True)
class Geometry:
    """Where the patch tokens are: `prefix` tokens (class, registers) first, then a `grid` of patches;
    `cls`: whether token 0 is a class token (else the patch tokens' rows are averaged)."""

    prefix: int
    grid: tuple[int, int]
    cls: bool

    def patch_map(self, values: torch.Tensor) -> torch.Tensor:
        """A value per token [T] -> the patch tokens' values on the grid [h, w]."""
        return values[self.prefix :].reshape(self.grid)

    def query_row(self, matrix: torch.Tensor) -> torch.Tensor:
        """The class token's row of a token matrix [T, T] (the mean patch row without a class token)."""
        return matrix[0] if self.cls else matrix[self.prefix :].mean(0)


def geometry(model: nn.Module, size: tuple[int, int], tokens: int) -> Geometry:
    """Prefix tokens and patch grid from the model (torchvision: class token and patch size; timm:
    num_prefix_tokens and the patch embedding's grid for this input size); else guessed as layers.to_grid
    guesses (a square grid after none or one class token)."""
    prefix: int | None = None
    grid: tuple[int, int] | None = None
    if hasattr(model, "class_token") and isinstance(getattr(model, "patch_size", None), int):
        prefix, p = 1, model.patch_size
        grid = (size[0] // p, size[1] // p)
    elif hasattr(model, "num_prefix_tokens"):
        prefix = int(model.num_prefix_tokens)
        embed = getattr(model, "patch_embed", None)
        if callable(getattr(embed, "dynamic_feat_size", None)):
            grid = tuple(int(s) for s in embed.dynamic_feat_size(size))
        elif getattr(embed, "grid_size", None) is not None:
            grid = tuple(int(s) for s in embed.grid_size)
    probe = to_grid(torch.zeros(1, tokens, 1), grid=grid, prefix=prefix)
    if probe.ndim != 4:
        raise ValueError(f"The {tokens} attention tokens do not form a patch grid.")
    h, w = int(probe.shape[2]), int(probe.shape[3])
    skip = tokens - h * w
    if hasattr(model, "class_token"):
        cls = True
    elif hasattr(model, "cls_token"):
        cls = model.cls_token is not None
    else:
        cls = skip >= 1
    return Geometry(skip, (h, w), cls and skip >= 1)


class AttentionCapture:
    """`with AttentionCapture(model) as cap: model(x)` fills `cap.maps` with each block's attention
    probabilities [B, heads, T, T] (in the graph when gradients are enabled) and `cap.tokens` with each
    block's output [B, T, C]. `isolate=True` detaches every block's input, so that one backward of a sum
    of per-block scores gives each block's attention the gradient of its own block's score alone."""

    def __init__(self, model: nn.Module, isolate: bool = False) -> None:
        self.sites = find_sites(model)
        if not self.sites:
            raise ValueError(f"{type(model).__name__} {NOT_A_VIT}.")
        self.isolate = isolate
        self.maps: list[torch.Tensor] = []
        self.tokens: list[torch.Tensor] = []
        self._undo: list[Callable[[], None]] = []

    def __enter__(self) -> AttentionCapture:
        try:
            for site in self.sites:
                if site.kind == "mha":
                    self._patch_mha(site.module)
                else:
                    self._hook_timm(site.module)
                handle = site.block.register_forward_hook(self._keep_tokens)
                self._undo.append(handle.remove)
                if self.isolate:
                    handle = site.block.register_forward_pre_hook(_detach_input)
                    self._undo.append(handle.remove)
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()

    def _restore(self) -> None:
        while self._undo:
            self._undo.pop()()

    def _record(self, attn: torch.Tensor) -> torch.Tensor:
        # Without trainable weights the probabilities are a leaf: make them one the backward reaches.
        if torch.is_grad_enabled() and not attn.requires_grad:
            attn.requires_grad_(True)
        self.maps.append(attn)
        return attn

    def _keep_tokens(self, _module: nn.Module, _inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            self.tokens.append(output)

    def _patch_mha(self, mha: nn.MultiheadAttention) -> None:
        own = "forward" in mha.__dict__
        previous = mha.__dict__.get("forward")
        original = mha.forward

        def forward(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *args: Any, **kwargs: Any):
            return _mha_forward(mha, original, self._record, query, key, value, *args, **kwargs)

        mha.forward = forward  # an instance attribute, removed on exit: the class's forward is untouched

        def undo() -> None:
            if own:
                mha.forward = previous
            else:
                del mha.forward

        self._undo.append(undo)

    def _hook_timm(self, attn: nn.Module) -> None:
        own = "fused_attn" in attn.__dict__
        previous = attn.__dict__.get("fused_attn")
        attn.fused_attn = False  # the explicit softmax path, so that attn_drop receives the probabilities

        def undo() -> None:
            if own:
                attn.fused_attn = previous
            else:
                del attn.fused_attn

        self._undo.append(undo)
        handle = attn.attn_drop.register_forward_pre_hook(lambda _m, args: (self._record(args[0]), *args[1:]))
        self._undo.append(handle.remove)


def _detach_input(_module: nn.Module, args: tuple) -> tuple:
    return (args[0].detach(), *args[1:]) if args and isinstance(args[0], torch.Tensor) else args


def _mha_forward(
    mha: nn.MultiheadAttention,
    original: Callable[..., Any],
    record: Callable[[torch.Tensor], torch.Tensor],
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    key_padding_mask: torch.Tensor | None = None,
    need_weights: bool = True,
    attn_mask: torch.Tensor | None = None,
    average_attn_weights: bool = True,
    is_causal: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """nn.MultiheadAttention's self-attention, softmax computed here and recorded before it is used."""
    if not (query is key is value) or key_padding_mask is not None or attn_mask is not None or is_causal:
        return original(query, key, value, key_padding_mask, need_weights, attn_mask, average_attn_weights)
    x = query if mha.batch_first or query.ndim == 2 else query.transpose(0, 1)
    unbatched = x.ndim == 2
    if unbatched:
        x = x[None]
    n, t, e = x.shape
    heads = mha.num_heads
    d = e // heads
    bias = mha.in_proj_bias
    if mha._qkv_same_embed_dim:
        q, k, v = F.linear(x, mha.in_proj_weight, bias).chunk(3, dim=-1)
    else:
        bq, bk, bv = bias.chunk(3) if bias is not None else (None, None, None)
        q = F.linear(x, mha.q_proj_weight, bq)
        k = F.linear(x, mha.k_proj_weight, bk)
        v = F.linear(x, mha.v_proj_weight, bv)
    q, k, v = (s.reshape(n, t, heads, -1).transpose(1, 2) for s in (q, k, v))  # [N, heads, T, d]
    attn = record(torch.softmax((q * math.sqrt(1.0 / d)) @ k.transpose(-2, -1), dim=-1))
    used = F.dropout(attn, mha.dropout, training=mha.training) if mha.dropout > 0 else attn
    out = (used @ v).transpose(1, 2).reshape(n, t, -1)
    out = F.linear(out, mha.out_proj.weight, mha.out_proj.bias)
    weights = (attn.mean(1) if average_attn_weights else attn) if need_weights else None
    if unbatched:
        return out[0], None if weights is None else weights[0]
    if not mha.batch_first:
        out = out.transpose(0, 1)
    return out, weights
