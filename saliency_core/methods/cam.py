"""Class activation maps: each variant is one weighting of a layer's activations A and gradients G.

Native outputs are [h, w] at the layer's resolution, without ReLU or normalisation; the map is the
bilinear upsampling to the input size. Gradient-based variants share one cached (A, G) per layer,
so switching among them makes no model pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ..errors import InvalidParameter
from ..targets import ClassTarget
from .base import BATCH_SIZE, LAYER, MethodSpec, register
from .common import upsample

if TYPE_CHECKING:
    from .context import MethodContext

# Each takes activations and gradients [K, h, w] and returns the map [h, w].
Weighting = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def gradcam(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    weights = g.mean(dim=(1, 2))
    return (weights[:, None, None] * a).sum(0)


def gradcam_pp(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    g2 = g * g
    g3 = g2 * g
    sum_a = a.sum(dim=(1, 2))[:, None, None]
    alpha = g2 / (2 * g2 + sum_a * g3 + 1e-6)
    alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
    weights = (g.clamp(min=0) * alpha).sum(dim=(1, 2))
    return (weights[:, None, None] * a).sum(0)


def xgradcam(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    sum_a = a.sum(dim=(1, 2))[:, None, None]
    weights = (g * a / (sum_a + 1e-7)).sum(dim=(1, 2))
    return (weights[:, None, None] * a).sum(0)


def hirescam(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return (g * a).sum(0)


def layercam(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return (g.clamp(min=0) * a).sum(0)


def _gradient_cam(weighting: Weighting) -> Callable[[MethodContext], tuple[torch.Tensor, torch.Tensor]]:
    def compute(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
        a, g = ctx.layer(ctx.params["layer"])
        raw = weighting(a[0], g[0])
        return raw, upsample(raw, tuple(ctx.x.shape[-2:]))

    return compute


_GRADIENT_CAMS = (
    (
        "gradcam",
        "Grad-CAM",
        gradcam,
        "Channels weighted by their mean gradient: where the evidence for the "
        "target sits at the layer's resolution.",
        "Selvaraju et al. 2017, Grad-CAM",
    ),
    (
        "gradcam_pp",
        "Grad-CAM++",
        gradcam_pp,
        "Grad-CAM with higher-order, per-position channel weights; better with several instances of a class.",
        "Chattopadhay et al. 2018, Grad-CAM++",
    ),
    (
        "xgradcam",
        "XGrad-CAM",
        xgradcam,
        "Channel weights from gradients times normalised activations (axiom-derived).",
        "Fu et al. 2020, Axiom-based Grad-CAM",
    ),
    (
        "hirescam",
        "HiResCAM",
        hirescam,
        "Gradients times activations element-wise, summed over channels: "
        "faithful to what the model computes at that layer.",
        "Draelos & Carin 2020, HiResCAM",
    ),
    (
        "layercam",
        "LayerCAM",
        layercam,
        "Positive gradients times activations per position; works at shallow layers too.",
        "Jiang et al. 2021, LayerCAM",
    ),
)
for _id, _title, _fn, _desc, _ref in _GRADIENT_CAMS:
    register(
        MethodSpec(
            id=_id,
            family="cam",
            title=_title,
            description=_desc,
            compute=_gradient_cam(_fn),
            params=(LAYER,),
            cost=lambda p, info: (1, 1),
            reference=_ref,
        )
    )


# --- CAM: the original, for global-average-pool + linear heads ---------------------------------
def _cam(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    target = ctx.target
    if not isinstance(target, ClassTarget):
        raise InvalidParameter("CAM explains a class of a classifier; pick a class as the target.")
    weight, activation = ctx.model.cam_head()
    a = ctx.activations(ctx.params["layer"])[0]
    if activation == "relu":
        a = a.clamp(min=0)
    if a.shape[0] != weight.shape[1]:
        raise InvalidParameter(
            f"CAM needs the layer that feeds the pooled linear head ({weight.shape[1]} channels); "
            f"layer {ctx.params['layer']} has {a.shape[0]}. Pick the model's last convolutional stage."
        )
    raw = (weight[target.index].to(a.dtype)[:, None, None] * a).sum(0)
    return raw, upsample(raw, tuple(ctx.x.shape[-2:]))


register(
    MethodSpec(
        id="cam",
        family="cam",
        title="CAM",
        description="The original class activation map: last-layer channels weighted by the linear head's "
        "weights for the class (global-average-pool networks only).",
        compute=_cam,
        params=(LAYER,),
        cost=lambda p, info: (1, 0),
        tasks=("classification",),
        reference="Zhou et al. 2016, Learning Deep Features for Discriminative Localization",
    )
)


# --- Eigen-CAM: no target, the first principal component of the activations ---------------------
def first_component(a: torch.Tensor) -> torch.Tensor:
    """Projection of each position's activation vector on the first principal direction, [h, w].

    The sign of a principal component is arbitrary; it is chosen so the map correlates positively
    with the mean activation, so that high values mean 'strongly active'.
    """
    k, h, w = a.shape
    flat = a.reshape(k, -1).T.double()
    flat = flat - flat.mean(dim=0)
    _, _, vt = torch.linalg.svd(flat, full_matrices=False)
    projection = flat @ vt[0]
    mean_act = a.reshape(k, -1).mean(0).double()
    if torch.dot(projection - projection.mean(), mean_act - mean_act.mean()) < 0:
        projection = -projection
    return projection.reshape(h, w).to(a.dtype)


def _eigencam(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    a = ctx.activations(ctx.params["layer"])[0]
    raw = first_component(a.float().cpu()).to(a.device)
    return raw, upsample(raw, tuple(ctx.x.shape[-2:]))


register(
    MethodSpec(
        id="eigencam",
        family="cam",
        title="Eigen-CAM",
        description="The first principal component of the layer's activations; needs no target and no gradient, "
        "so it shows what the layer finds salient regardless of class.",
        compute=_eigencam,
        params=(LAYER,),
        needs_target=False,
        cost=lambda p, info: (1, 0),
        reference="Muhammad & Yeasin 2020, Eigen-CAM",
    )
)


# --- Score-CAM: channels weighted by the score of the image masked with them -------------------
def _scorecam(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    a = ctx.activations(ctx.params["layer"])[0]
    x = ctx.x
    k = a.shape[0]
    scores = torch.empty(k, device=x.device)

    def body(start: int, stop: int) -> None:
        # Masks are made per batch: all of them at input size would hold k x H x W floats at once.
        # align_corners=True matches the reference implementation's UpsamplingBilinear2d.
        masks = F.interpolate(
            a[None, start:stop].float(), size=tuple(x.shape[-2:]), mode="bilinear", align_corners=True
        )[0]
        flat = masks.reshape(stop - start, -1)
        lo = flat.min(dim=1).values[:, None, None]
        hi = flat.max(dim=1).values[:, None, None]
        masks = (masks - lo) / (hi - lo + 1e-8)
        scores[start:stop] = ctx.scores(x * masks[:, None]).to(x.device)

    ctx.for_batches(k, body, "Score-CAM channels")
    weights = torch.softmax(scores, dim=0).to(a.dtype)
    raw = (weights[:, None, None] * a).sum(0)
    return raw, upsample(raw, tuple(x.shape[-2:]))


register(
    MethodSpec(
        id="scorecam",
        family="cam",
        title="Score-CAM",
        description="Gradient-free: each channel, upsampled to a mask, is weighted by the target score of the "
        "image seen through that mask (softmax over channels).",
        compute=_scorecam,
        params=(LAYER, BATCH_SIZE),
        cost=lambda p, info: (info.channels + 1, 0),
        reference="Wang et al. 2020, Score-CAM",
    )
)


# --- Guided Grad-CAM ------------------------------------------------------------------------------
def _guided_gradcam(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    a, g = ctx.layer(ctx.params["layer"])
    cam = upsample(gradcam(a[0], g[0]).clamp(min=0), tuple(ctx.x.shape[-2:]))
    raw = ctx.guided_grad()[0] * cam[None]
    return raw, raw.sum(0)


register(
    MethodSpec(
        id="guided_gradcam",
        family="cam",
        title="Guided Grad-CAM",
        description="Guided Backpropagation multiplied by the (ReLU'd, upsampled) Grad-CAM map: fine detail, "
        "restricted to the class region.",
        compute=_guided_gradcam,
        params=(LAYER,),
        cost=lambda p, info: (2, 2),
        reference="Selvaraju et al. 2017, Grad-CAM",
    )
)
