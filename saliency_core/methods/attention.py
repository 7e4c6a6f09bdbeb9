"""Transformer attention family: attention rollout, Chefer et al.'s gradient-weighted rollout, and LeGrad.

Each block's attention probabilities [heads, T, T] come from `AttentionCapture` (attention_capture.py);
a map is a value per patch token on the model's patch grid (raw [h, w]), upsampled bilinearly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..errors import InvalidParameter
from .attention_capture import NOT_A_VIT, AttentionCapture, Geometry, find_sites, geometry, readout
from .base import MethodSpec, Param, Passes, register
from .common import upsample
from .lesson import Lesson

if TYPE_CHECKING:
    from ..models.loaded import LoadedModel
    from .context import MethodContext

FUSIONS = ("mean", "max", "min")


def _vit_check(model: LoadedModel) -> str:
    return "" if find_sites(model.module) else f"{_title(model)} {NOT_A_VIT}."


def _legrad_check(model: LoadedModel) -> str:
    why = _vit_check(model)
    if why or readout(model.module) is not None:
        return why
    return (
        f"LeGrad {NOT_A_VIT} whose head it can apply to every block's tokens (torchvision's or timm's "
        f"VisionTransformer); {_title(model)} has attention but no known head."
    )


def _title(model: LoadedModel) -> str:
    return f"This model ({model.title})"


def _capture(ctx: MethodContext, isolate: bool = False) -> tuple[AttentionCapture, object, Geometry]:
    """One forward pass inside the capture (gradients on when enabled by the caller)."""
    try:
        cap = AttentionCapture(ctx.model.module, isolate=isolate)
    except ValueError:
        raise InvalidParameter(f"{_title(ctx.model)} {NOT_A_VIT}.") from None
    with cap:
        out = ctx.model.forward(ctx.x.detach())
    ctx.count_passes(1, 1 if torch.is_grad_enabled() else 0)
    if not cap.maps:
        raise InvalidParameter(
            f"{_title(ctx.model)} {NOT_A_VIT}: no attention was computed in its forward pass."
        )
    tokens = int(cap.maps[0].shape[-1])
    try:
        geo = geometry(ctx.model.module, tuple(ctx.x.shape[-2:]), tokens)
    except ValueError as exc:
        raise InvalidParameter(str(exc)) from None
    ctx.extras["blocks"] = len(cap.maps)
    ctx.extras["tokens"] = tokens
    ctx.extras["prefix_tokens"] = geo.prefix
    return cap, out, geo


def _finish(ctx: MethodContext, geo: Geometry, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    raw = geo.patch_map(values.detach().float()).cpu()
    return raw, upsample(raw, tuple(ctx.x.shape[-2:]))


def _grads(score: torch.Tensor, maps: list[torch.Tensor]) -> list[torch.Tensor]:
    if not score.requires_grad:
        raise InvalidParameter("The target score does not depend on the attention, so it has no gradient.")
    grads = torch.autograd.grad(score, maps, allow_unused=True)
    return [torch.zeros_like(a) if g is None else g for a, g in zip(maps, grads)]


# --- attention rollout ----------------------------------------------------------------------------
def fuse_heads(attn: torch.Tensor, fusion: str) -> torch.Tensor:
    """[heads, T, T] -> [T, T] by the mean, max or min over heads."""
    if fusion == "mean":
        return attn.mean(0)
    return attn.amax(0) if fusion == "max" else attn.amin(0)


def rollout(maps: list[torch.Tensor], fusion: str = "mean", discard_ratio: float = 0.0) -> torch.Tensor:
    """Abnar & Zuidema's rollout of per-block attention [heads, T, T]: (fused + I) row-normalised, the
    lowest `discard_ratio` of each fused matrix's entries zeroed first (never the class token's own)."""
    t = maps[0].shape[-1]
    eye = torch.eye(t, dtype=maps[0].dtype, device=maps[0].device)
    joint = eye
    for attn in maps:
        fused = fuse_heads(attn, fusion).clone()
        drop = int(fused.numel() * discard_ratio)
        if drop:
            flat = fused.view(-1)
            lowest = flat.topk(drop, largest=False).indices
            flat[lowest[lowest != 0]] = 0
        step = fused + eye
        joint = (step / step.sum(-1, keepdim=True)) @ joint
    return joint


def _rollout(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    p = ctx.params
    with torch.no_grad():
        cap, _, geo = _capture(ctx)
        joint = rollout([a[0] for a in cap.maps], p["head_fusion"], float(p["discard_ratio"]))
    return _finish(ctx, geo, geo.query_row(joint))


# --- Chefer et al. 2021 (ICCV): gradient-weighted rollout ------------------------------------------
def chefer_relevance(maps: list[torch.Tensor], grads: list[torch.Tensor]) -> torch.Tensor:
    """R = I; for each block in order, R += mean_heads(relu(grad * A)) @ R."""
    t = maps[0].shape[-1]
    relevance = torch.eye(t, dtype=maps[0].dtype, device=maps[0].device)
    for attn, grad in zip(maps, grads):
        weighted = (grad * attn).clamp(min=0).mean(0)
        relevance = relevance + weighted @ relevance
    return relevance


def _chefer(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    assert ctx.target is not None
    with torch.enable_grad():
        cap, out, geo = _capture(ctx)
        grads = _grads(ctx.target(out).sum(), cap.maps)
    relevance = chefer_relevance([a.detach()[0] for a in cap.maps], [g[0] for g in grads])
    return _finish(ctx, geo, geo.query_row(relevance))


# --- LeGrad (Bousselham et al. 2024) ---------------------------------------------------------------
def legrad_scores(grads: list[torch.Tensor]) -> torch.Tensor:
    """Per-block gradients [heads, T, T] -> a value per token [T]: relu, mean over heads and query
    tokens, summed over the blocks."""
    return sum(g.clamp(min=0).mean(0).mean(0) for g in grads)


def min_max(values: torch.Tensor) -> torch.Tensor:
    span = values.max() - values.min()
    return (values - values.min()) / span if span > 0 else torch.zeros_like(values)


def _legrad(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    assert ctx.target is not None
    head = readout(ctx.model.module)
    if head is None:
        raise InvalidParameter(_legrad_check(ctx.model))
    with torch.enable_grad():
        # Blocks' inputs detached: one backward of the sum of every block's own score gives each block's
        # attention the gradient of that block's score alone (later blocks no longer reach it).
        cap, _, geo = _capture(ctx, isolate=True)
        if len(cap.tokens) != len(cap.maps):
            raise InvalidParameter(f"{_title(ctx.model)}: its attention blocks do not output tokens.")
        used = int(ctx.params["layers"]) or len(cap.maps)
        first = max(0, len(cap.maps) - used)
        score = sum(ctx.target(head(z)).sum() for z in cap.tokens[first:])
        grads = _grads(score, cap.maps[first:])
    values = legrad_scores([g[0] for g in grads])
    patches = min_max(values[geo.prefix :])
    full = torch.cat([torch.zeros(geo.prefix, dtype=patches.dtype, device=patches.device), patches])
    ctx.extras["layers_used"] = len(grads)
    return _finish(ctx, geo, full)


# --- registration ---------------------------------------------------------------------------------
_ATTENTION_NOTE = (
    "Attention is not explanation: attention weights say where a token reads from, not how much that "
    "information changes the prediction (Jain & Wallace 2019; Serrano & Smith 2019)."
)
_SINK_NOTE = (
    "Attention sinks: large ViTs park attention on a few low-information background tokens (high-norm "
    "'artifact' tokens, Darcet et al. 2024, Vision Transformers Need Registers), which then light up as "
    "bright isolated patches. Register tokens, where the model has them, are left out of the map with the "
    "class token, but the attention they absorb shrinks everything else."
)
_MAXIMUM_NOTE = (
    "Its brightest patch is not reliably on the recognised object (sinks, background tokens): read the "
    "map's overall pattern, and it is not declared to localise."
)
_GRID_NOTE = (
    "The map has one value per patch (14×14 for a ViT-B/16 at 224 px), upsampled bilinearly: it is blocky."
)

register(
    MethodSpec(
        id="attention_rollout",
        family="attention",
        title="Attention rollout",
        description="The class token's attention to each patch, followed through all the blocks (class-agnostic).",
        compute=_rollout,
        params=(
            Param("head_fusion", "choice", "mean", "How the heads of a block are merged.", choices=FUSIONS),
            Param(
                "discard_ratio",
                "float",
                0.0,
                "Share of each block's lowest attentions set to zero before the rollout.",
                min=0.0,
                max=0.99,
                step=0.05,
            ),
        ),
        needs_target=False,
        cost=lambda p, info: Passes(1, 0),
        tasks=("classification",),
        model_check=_vit_check,
        reference="Abnar & Zuidema 2020, Quantifying Attention Flow in Transformers",
        lesson=Lesson(
            computes="How much the class token, after the last block, has drawn (directly or through other "
            "tokens) from each patch: every block's attention, heads merged, with the residual connection "
            "modelled as an identity and each row renormalised, multiplied through the blocks. It uses no "
            "target and no gradient: it is **class-agnostic**, the same map for every class.",
            formula=r"\hat A^{(l)} = \frac{\mathrm{fuse}_h A^{(l)}_h + I}{\text{row sums}},\quad "
            r"\tilde A = \hat A^{(L)} \hat A^{(L-1)} \cdots \hat A^{(1)},\quad M = \tilde A_{\mathrm{cls},\,"
            r"\mathrm{patches}}",
            cost="One forward pass, no backward.",
            params={
                "head_fusion": "The paper averages heads; max (popularised by Gildenblat's vit-explain) "
                "keeps each token's strongest head and gives sharper maps; min the weakest.",
                "discard_ratio": "Zeroes the lowest entries of each merged attention matrix (the class "
                "token's attention to itself is kept) before the identity is added: less diffuse maps, "
                "at the price of a heuristic the paper does not have. 0 is the paper's rollout.",
            },
            pitfalls=(
                "Class-agnostic: it cannot say which patches support one class rather than another; use "
                "Chefer's relevance or LeGrad for that.",
                _ATTENTION_NOTE,
                "It ignores the value vectors, the MLPs and the norms: the residual is assumed to carry as "
                "much as the attention (the identity).",
                _SINK_NOTE,
                _MAXIMUM_NOTE,
                _GRID_NOTE,
            ),
            compare_with="chefer",
            paper="Abnar & Zuidema 2020, Quantifying Attention Flow in Transformers (ACL)",
        ),
    )
)
register(
    MethodSpec(
        id="chefer",
        family="attention",
        title="Transformer attribution (Chefer)",
        description="Rollout of the attention weighted by the target's gradient: a class-specific rollout.",
        compute=_chefer,
        cost=lambda p, info: Passes(1, 1),
        tasks=("classification",),
        model_check=_vit_check,
        reference="Chefer, Gur & Wolf 2021, Generic Attention-model Explainability (ICCV)",
        lesson=Lesson(
            computes="A rollout in which each block's attention is weighted by the gradient of the target's "
            "score with respect to it, negative contributions removed and heads averaged, and added to "
            "the relevance carried by the residual connection. It is class-specific.",
            formula=r"R^{(0)} = I,\quad \bar A^{(l)} = \mathbb{E}_h\!\left[\left(\nabla_{A^{(l)}_h} S_t "
            r"\odot A^{(l)}_h\right)^{+}\right],\quad R^{(l)} = R^{(l-1)} + \bar A^{(l)} R^{(l-1)},\quad "
            r"M = R^{(L)}_{\mathrm{cls},\,\mathrm{patches}}",
            cost="One forward and one backward pass (the gradients with respect to every block's attention).",
            pitfalls=(
                "This is the ICCV 2021 version (generic attention-model explainability). The CVPR 2021 "
                "paper by the same authors (Transformer Interpretability Beyond Attention Visualization) "
                "multiplies the gradient with each attention's LRP relevance instead of the attention "
                "itself, which needs LRP rules for every layer of the model; the ICCV version keeps only "
                "the gradient and gives close maps at the cost of one backward pass.",
                _ATTENTION_NOTE,
                _SINK_NOTE,
                _MAXIMUM_NOTE,
                "A randomly initialised torchvision ViT has an all-zero head: every gradient, and the "
                "class-specific part of the map, is then zero (the map is the identity's class row: blank).",
                _GRID_NOTE,
            ),
            compare_with="attention_rollout",
            paper="Chefer, Gur & Wolf 2021, Generic Attention-model Explainability for Interpreting Bi-Modal "
            "and Encoder-Decoder Transformers (ICCV)",
        ),
    )
)
register(
    MethodSpec(
        id="legrad",
        family="attention",
        title="LeGrad",
        description="The target's sensitivity to every block's attention, each block read through the head.",
        compute=_legrad,
        params=(
            Param(
                "layers",
                "int",
                0,
                "How many of the last blocks are summed; 0 uses every block.",
                min=0,
                max=64,
                step=1,
            ),
        ),
        cost=lambda p, info: Passes(1, 1),
        tasks=("classification",),
        model_check=_legrad_check,
        reference="Bousselham et al. 2024, LeGrad: An Explainability Method for Vision Transformers",
        lesson=Lesson(
            computes="For each block l, the model's final norm and head are applied to that block's tokens "
            "(pooled as the model pools them: the class token), giving a score for the target as if the "
            "network ended there; the gradient of that score with respect to the block's attention map, "
            "its positive part averaged over heads and query tokens, gives a value per token. The blocks' "
            "values are summed and min-max normalised.",
            formula=r"s^{(l)} = \mathrm{head}\big(\mathrm{norm}(z^{(l)})_{\mathrm{cls}}\big)_t,\quad "
            r"E^{(l)} = \frac{1}{H N}\sum_{h}\sum_{i}\left(\frac{\partial s^{(l)}}{\partial A^{(l)}_{h,i,:}}"
            r"\right)^{+},\quad M = \mathrm{minmax}\Big(\sum_l E^{(l)}_{\mathrm{patches}}\Big)",
            cost="One forward and one backward pass: each block's input is detached during the pass, so one "
            "backward of the sum of the per-block scores gives each attention map the gradient of its own "
            "block's score alone.",
            params={
                "layers": "The paper sums every block; its reference wrapper (LeWrapper) starts at the "
                "second-to-last block by default (layers=2 here), where the maps are cleaner.",
            },
            pitfalls=(
                "The score of block l is read from its class token through the final norm and head, as the "
                "paper describes for a classifier. The reference implementation for CLIP averages all the "
                "tokens before its final norm and projection; we follow each model's own pooling (timm "
                "models that average patch tokens are read so).",
                "Min-max normalised: the map's scale says nothing about how strongly the target depends on "
                "the image, only where most.",
                _ATTENTION_NOTE,
                _SINK_NOTE,
                _MAXIMUM_NOTE,
                _GRID_NOTE,
            ),
            compare_with="chefer",
            paper="Bousselham, Boggust, Chaybouti, Strobelt & Kuehne 2024, LeGrad: An Explainability Method "
            "for Vision Transformers via Feature Formation Sensitivity",
        ),
    )
)
