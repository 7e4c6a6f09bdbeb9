"""Class activation maps: each variant is one weighting of a layer's activations A and gradients G.

Native outputs are [h, w] at the layer's resolution, without ReLU or normalisation; the map is the
bilinear upsampling to the input size. Gradient-based variants share one cached (A, G) per layer,
so switching among them makes no model pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ..errors import InvalidParameter
from ..targets import ClassTarget
from .base import BATCH_SIZE, LAYER, MethodSpec, Passes, register
from .common import upsample
from .lesson import Lesson

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


# Grad-CAM is the first map users see and the baseline every page compares with.
_FEATURED = {"gradcam": {"explore": 1, "compare": 1, "evaluate": 1}}
_GRADIENT_CAMS = (
    (
        "gradcam",
        "Grad-CAM",
        gradcam,
        "Channels weighted by their mean gradient: where the evidence for the "
        "target sits at the layer's resolution.",
        "Selvaraju et al. 2017, Grad-CAM",
        Lesson(
            computes="Each channel of a convolutional layer weighted by the mean gradient of the target score over "
            "that channel, summed: where the evidence for the target sits, at the layer's resolution.",
            formula=r"\alpha_k = \frac{1}{hw} \sum_{i,j} \frac{\partial S_t}{\partial A^k_{ij}}, \qquad "
            r"M = \sum_k \alpha_k A^k \quad (\text{shown: } \mathrm{ReLU}(M), \text{ upsampled})",
            cost="One forward and one backward pass; other CAM variants on the same layer reuse them.",
            params={
                "layer": "Deeper layers: coarser but more class-specific maps; earlier layers: finer, noisier."
            },
            pitfalls=(
                "Coarse: at the last layer of a ResNet a map cell covers 32×32 pixels.",
                "Averaging the gradient can cancel positive and negative evidence (HiResCAM avoids that).",
                "Several instances of a class: the map may highlight only some of them.",
            ),
            paper="Selvaraju et al. 2017, Grad-CAM",
        ),
    ),
    (
        "gradcam_pp",
        "Grad-CAM++",
        gradcam_pp,
        "Grad-CAM with higher-order, per-position channel weights; better with several instances of a class.",
        "Chattopadhay et al. 2018, Grad-CAM++",
        Lesson(
            computes="Grad-CAM with channel weights built from positive gradients and higher-order terms, which "
            "helps when several instances of the class appear.",
            formula=r"\alpha_k = \sum_{i,j} w^k_{ij}\, \mathrm{ReLU}\!\left(g^k_{ij}\right), \qquad "
            r"w^k_{ij} = \frac{(g^k_{ij})^2}{2 (g^k_{ij})^2 + \sum_{a,b} A^k_{ab} (g^k_{ij})^3}",
            cost="Free after Grad-CAM on the same layer (same activations and gradients).",
            pitfalls=(
                "The higher-order terms assume an exponential output; with raw logits they are approximate.",
            ),
            paper="Chattopadhyay et al. 2018, Grad-CAM++",
        ),
    ),
    (
        "xgradcam",
        "XGrad-CAM",
        xgradcam,
        "Channel weights from gradients times normalised activations (axiom-derived).",
        "Fu et al. 2020, Axiom-based Grad-CAM",
        Lesson(
            computes="Grad-CAM with each gradient weighted by the activation's share of its channel, derived from "
            "sensitivity and conservation axioms.",
            formula=r"\alpha_k = \sum_{i,j} \frac{A^k_{ij}}{\sum_{a,b} A^k_{ab}} \frac{\partial S_t}{\partial A^k_{ij}}",
            cost="Free after Grad-CAM on the same layer.",
            pitfalls=("Channels with near-zero total activation get unstable weights.",),
            paper="Fu et al. 2020, Axiom-based Grad-CAM",
        ),
    ),
    (
        "hirescam",
        "HiResCAM",
        hirescam,
        "Gradients times activations element-wise, summed over channels: "
        "faithful to what the model computes at that layer.",
        "Draelos & Carin 2020, HiResCAM",
        Lesson(
            computes="Gradients multiplied by activations element-wise, without averaging: provably shows the "
            "locations the score depends on for models ending in global pooling and a linear layer.",
            formula=r"M = \sum_k \frac{\partial S_t}{\partial A^k} \odot A^k",
            cost="Free after Grad-CAM on the same layer.",
            pitfalls=("Noisier than Grad-CAM because nothing is averaged.",),
            paper="Draelos & Carin 2020, HiResCAM",
        ),
    ),
    (
        "layercam",
        "LayerCAM",
        layercam,
        "Positive gradients times activations per position; works at shallow layers too.",
        "Jiang et al. 2021, LayerCAM",
        Lesson(
            computes="Positive gradients times activations, location by location; works well at earlier layers "
            "where Grad-CAM's averaging blurs.",
            formula=r"M = \sum_k \mathrm{ReLU}\!\left(\frac{\partial S_t}{\partial A^k}\right) \odot A^k",
            cost="Free after Grad-CAM on the same layer.",
            params={"layer": "LayerCAM is meant for earlier layers too: try each stage to see finer detail."},
            pitfalls=("At early layers the map picks up edges and texture, not only the object.",),
            paper="Jiang et al. 2021, LayerCAM",
        ),
    ),
)
for _id, _title, _fn, _desc, _ref, _lesson in _GRADIENT_CAMS:
    register(
        MethodSpec(
            id=_id,
            localises=True,
            family="cam",
            title=_title,
            description=_desc,
            compute=_gradient_cam(_fn),
            params=(LAYER,),
            cost=lambda p, info: Passes(1, 1, to_layer=1),  # backward stops at the layer
            reference=_ref,
            lesson=_lesson,
            featured=_FEATURED.get(_id, {}),
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
        localises=True,
        family="cam",
        title="CAM",
        description="The original class activation map: last-layer channels weighted by the linear head's "
        "weights for the class (global-average-pool networks only).",
        compute=_cam,
        params=(LAYER,),
        cost=lambda p, info: (1, 0),
        tasks=("classification",),
        reference="Zhou et al. 2016, Learning Deep Features for Discriminative Localization",
        lesson=Lesson(
            computes="The original class activation map: the last convolutional channels weighted by the linear "
            "classifier's weights for the target class.",
            formula=r"M = \sum_k w^{\mathrm{fc}}_{t,k}\, A^k",
            cost="One forward pass, no gradient.",
            pitfalls=(
                "Only for networks that end with global average pooling and one linear layer.",
                "Only meaningful at the layer feeding the pooling.",
            ),
            paper="Zhou et al. 2016, Learning Deep Features for Discriminative Localization",
        ),
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
    # The SVD runs where the activations are, in float64; MPS has no float64, so there on the CPU.
    where = torch.device("cpu") if a.device.type == "mps" else a.device
    raw = first_component(a.float().to(where)).to(a.device)
    return raw, upsample(raw, tuple(ctx.x.shape[-2:]))


register(
    MethodSpec(
        id="eigencam",
        localises=True,
        family="cam",
        title="Eigen-CAM",
        description="The first principal component of the layer's activations; needs no target and no gradient, "
        "so it shows what the layer finds salient regardless of class.",
        compute=_eigencam,
        params=(LAYER,),
        needs_target=False,
        cost=lambda p, info: (1, 0),
        reference="Muhammad & Yeasin 2020, Eigen-CAM",
        lesson=Lesson(
            computes="The first principal component of the layer's activations: the dominant spatial pattern, "
            "whatever the target.",
            formula=r"\bar A \in \mathbb{R}^{hw \times K} \text{ (centred)},\quad \bar A = U \Sigma V^\top, "
            r"\qquad M = \bar A\, v_1",
            cost="One forward pass, no gradient.",
            pitfalls=(
                "Class-agnostic: every target gets the same map.",
                "The sign of a principal component is arbitrary; the library orients it to agree with the mean "
                "activation, which is a convention, not evidence.",
            ),
            paper="Muhammad & Yeasin 2020, Eigen-CAM",
        ),
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


def _scorecam_slow_hint(params: Mapping[str, Any], forward_passes: int, when: str, what: str) -> str:
    return (
        f"Score-CAM makes one forward pass per channel of {params.get('layer')} ({forward_passes - 1} here) "
        f"through {what}: {when}. Grad-CAM and its variants need one pass; a layer with fewer channels "
        "is cheaper."
    )


register(
    MethodSpec(
        id="scorecam",
        localises=True,
        slow_hint=_scorecam_slow_hint,
        family="cam",
        title="Score-CAM",
        description="Gradient-free: each channel, upsampled to a mask, is weighted by the target score of the "
        "image seen through that mask (softmax over channels).",
        compute=_scorecam,
        params=(LAYER, BATCH_SIZE),
        cost=lambda p, info: Passes(info.channels + 1, 0, batched=info.channels),
        reference="Wang et al. 2020, Score-CAM",
        lesson=Lesson(
            computes="Gradient-free: each channel, upsampled and normalised into a mask, is weighted by the target "
            "score of the image seen only through that mask (softmax over channels).",
            formula=r"s_k = S_t\!\left(x \odot \mathrm{norm}\big(\mathrm{up}(A^k)\big)\right), \qquad "
            r"\alpha = \mathrm{softmax}(s), \qquad M = \sum_k \alpha_k A^k",
            cost="One forward pass per channel of the layer (hundreds to thousands on large networks).",
            pitfalls=(
                "Slow on wide layers.",
                "Masked images are unlike training images (out of distribution).",
            ),
            paper="Wang et al. 2020, Score-CAM",
        ),
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
        localises=True,
        sign="absolute",
        display="gray",  # Selvaraju et al. show it in pixel space, without the picture
        family="cam",
        title="Guided Grad-CAM",
        description="Guided Backpropagation multiplied by the (ReLU'd, upsampled) Grad-CAM map: fine detail, "
        "restricted to the class region.",
        compute=_guided_gradcam,
        params=(LAYER,),
        cost=lambda p, info: Passes(2, 2, to_layer=1),  # Grad-CAM's stops at the layer
        reference="Selvaraju et al. 2017, Grad-CAM",
        lesson=Lesson(
            computes="Guided Backpropagation multiplied by the upsampled, rectified Grad-CAM: fine detail, "
            "restricted to the class-relevant region.",
            formula=r"M = \mathrm{GB}(x) \odot \mathrm{up}\!\left(\mathrm{ReLU}(M_{\text{Grad-CAM}})\right)",
            cost="Two forward and two backward passes (guided and plain).",
            pitfalls=("Inherits Guided Backpropagation's edge-detector behaviour inside the region.",),
            compare_with="edges_sobel",
            paper="Selvaraju et al. 2017, Grad-CAM",
        ),
    )
)
