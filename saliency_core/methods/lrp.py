"""Propagation family: layer-wise relevance propagation (LRP) with zennit's composites and canonizers.

LRP is a modified backward pass: zennit's hooks make the gradient of each layer carry relevance instead of
sensitivity, so one `ctx.gradients(x, rules=...)` call computes it, batched, counted and retried by the
engine like any gradient. The output is seeded with the target's score (the output times d score / d
output), which is what zennit's `Gradient` attributor does when given the output times a one-hot vector,
so the input relevance sums to the score on a bias-free network (conservation).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from zennit.canonizers import Canonizer, SequentialMergeBatchNorm
from zennit.composites import (
    EpsilonAlpha2Beta1,
    EpsilonGammaBox,
    EpsilonPlus,
    EpsilonPlusFlat,
    LayerMapComposite,
    layer_map_base,
)
from zennit.core import Composite, collect_leaves
from zennit.rules import Epsilon
from zennit.torchvision import ResNetCanonizer, VGGCanonizer
from zennit.types import BatchNorm, Convolution
from zennit.types import Linear as AnyLinear

from .base import MethodSpec, Param, Passes, register
from .common import channel_sum
from .lesson import Lesson

if TYPE_CHECKING:
    from ..models.loaded import LoadedModel
    from .context import MethodContext

COMPOSITES = ("epsilon_plus_flat", "epsilon_gamma_box", "epsilon_alpha2_beta1", "epsilon_plus", "epsilon")
TASKS = ("classification", "segmentation")


# --- canonizers: chosen from the module's structure ----------------------------------------------
def _resnet_blocks() -> tuple[type, ...]:
    from torchvision.models.resnet import BasicBlock, Bottleneck

    return (BasicBlock, Bottleneck)


def _pairs(module: nn.Module) -> Iterator[tuple[nn.Module | None, nn.Module]]:
    """(previous leaf, batch norm) for every batch norm, in leaf order (zennit's merge order)."""
    last = None
    for leaf in collect_leaves(module):
        if isinstance(leaf, BatchNorm):
            yield last, leaf
        last = leaf


def _mergeable(last: nn.Module | None, norm: nn.Module) -> bool:
    outputs = getattr(last, "out_channels", getattr(last, "out_features", None))
    return isinstance(last, AnyLinear) and outputs == norm.num_features


def _merges_batch_norm(module: nn.Module) -> bool:
    """Whether a batch norm directly follows a linear layer or convolution (in leaf order)."""
    return any(_mergeable(last, norm) for last, norm in _pairs(module))


def canonizers_for(module: nn.Module) -> list[Canonizer]:
    """zennit's canonizers for this model: ResNet's (merged batch norms and a Sum module at each skip
    connection, which its rules can see), VGG's, or batch norms merged into the preceding layer."""
    from torchvision.models import VGG

    if any(isinstance(m, _resnet_blocks()) for m in module.modules()):
        return [ResNetCanonizer()]
    if isinstance(module, VGG):
        return [VGGCanonizer()]
    return [SequentialMergeBatchNorm()] if _merges_batch_norm(module) else []


def build_composite(
    name: str,
    epsilon: float,
    gamma: float,
    low: torch.Tensor | None,
    high: torch.Tensor | None,
    canonizers: list[Canonizer],
) -> Composite:
    """zennit's composite `name` with the method's parameters (low / high: the input's range, for z^B)."""
    if name == "epsilon_plus_flat":
        return EpsilonPlusFlat(epsilon=epsilon, canonizers=canonizers)
    if name == "epsilon_gamma_box":
        return EpsilonGammaBox(low=low, high=high, epsilon=epsilon, gamma=gamma, canonizers=canonizers)
    if name == "epsilon_alpha2_beta1":
        return EpsilonAlpha2Beta1(epsilon=epsilon, canonizers=canonizers)
    if name == "epsilon_plus":
        return EpsilonPlus(epsilon=epsilon, canonizers=canonizers)
    if name == "epsilon":
        # LRP-epsilon in every layer (zennit has no such preset): at epsilon -> 0 it is gradient x input.
        layer_map = [*layer_map_base(), (Convolution, Epsilon(epsilon)), (nn.Linear, Epsilon(epsilon))]
        return LayerMapComposite(layer_map=layer_map, canonizers=canonizers)
    raise ValueError(f"Unknown composite {name!r} (one of {', '.join(COMPOSITES)}).")


# --- the output seed: relevance of the target's score ---------------------------------------------
class _SeedWithOutput(torch.autograd.Function):
    """Identity forward; backward multiplies the incoming d score / d output by the output, so LRP starts
    from the score's share of each output (the logit itself for a class) and records that total."""

    @staticmethod
    def forward(ctx: Any, output: torch.Tensor, totals: list) -> torch.Tensor:
        ctx.save_for_backward(output)
        ctx.totals = totals
        return output.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (output,) = ctx.saved_tensors
        seed = grad * output
        ctx.totals.append(seed.detach().flatten(1).sum(1))
        return seed, None


def _seeded(output: Any, totals: list) -> Any:
    """The output with every floating tensor (of a dict, tuple or list too) passed through the seed."""
    if isinstance(output, torch.Tensor):
        if output.is_floating_point() and output.requires_grad:
            return _SeedWithOutput.apply(output, totals)
        return output
    if isinstance(output, dict):
        return type(output)((k, _seeded(v, totals)) for k, v in output.items())
    if type(output) in (tuple, list):
        return type(output)(_seeded(v, totals) for v in output)
    return output


class _Snapshot:
    """Every module's parameters, buffers and attributes, put back if registering a composite fails
    half-way (a canonizer that raises loses the merges it already made)."""

    def __init__(self, module: nn.Module) -> None:
        self.saved = [
            (
                m,
                set(vars(m)),
                dict(m._modules),
                dict(m._parameters),
                {k: v.data for k, v in m._parameters.items() if v is not None},
                {k: v.data for k, v in m._buffers.items() if v is not None},
            )
            for m in module.modules()
        ]

    def restore(self) -> None:
        for m, names, children, params, data, buffers in self.saved:
            for extra in set(vars(m)) - names:
                delattr(m, extra)
            m._modules.clear()
            m._modules.update(children)
            m._parameters.clear()
            m._parameters.update(params)
            for k, v in data.items():
                params[k].data = v
            for k, v in buffers.items():
                m._buffers[k].data = v


@contextmanager
def lrp_rules(module: nn.Module, composite: Composite, totals: list) -> Iterator[nn.Module]:
    """The composite's canonizers and hooks, plus the score seed at the output, for one batch; all removed
    (merged batch norms restored) when the block ends, also after an error."""
    snapshot = _Snapshot(module)
    try:
        composite.register(module)
    except Exception:
        composite.remove()
        snapshot.restore()
        raise
    try:
        # After the composite's hooks: a hook of the root itself must see the seeded gradient.
        handle = module.register_forward_hook(lambda _m, _i, out: _seeded(out, totals))
        try:
            yield module
        finally:
            handle.remove()
    finally:
        composite.remove()


def _input_range(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel [1, C, 1, 1] input values of an all-0 and an all-255 picture (z^B's box); for an input
    that is not RGB, whose preprocessing says nothing of its range, the input's own per-channel range."""
    x = ctx.x[:1, :, :1, :1]
    if x.shape[1] != 3:
        return ctx.x.amin(dim=(0, 2, 3), keepdim=True), ctx.x.amax(dim=(0, 2, 3), keepdim=True)
    low = ctx.model.black(x)
    high = ctx.model.from_pixels(torch.ones_like(x))
    return torch.minimum(low, high), torch.maximum(low, high)


def _lrp(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    p = ctx.params
    low, high = _input_range(ctx) if p["composite"] == "epsilon_gamma_box" else (None, None)
    canonizers = canonizers_for(ctx.model.module)
    composite = build_composite(p["composite"], float(p["epsilon"]), float(p["gamma"]), low, high, canonizers)
    totals: list[torch.Tensor] = []
    found: list[torch.Tensor] = []

    def body(start: int, stop: int) -> None:
        totals.clear()
        found.append(ctx.gradients(ctx.x, rules=partial(lrp_rules, composite=composite, totals=totals)))

    ctx.for_batches(1, body, "Relevance propagation")
    raw = found[-1][0]
    at_output = float(sum(t.sum() for t in totals)) if totals else 0.0
    ctx.extras["relevance_at_output"] = at_output  # the target's score, for a class logit
    ctx.extras["relevance_at_input"] = float(raw.sum())
    ctx.extras["canonizers"] = [type(c).__name__ for c in canonizers]
    return raw, channel_sum(raw)


# --- which models it explains ----------------------------------------------------------------------
def _is_attention(m: nn.Module) -> bool:
    return isinstance(m, nn.MultiheadAttention) or isinstance(getattr(m, "qkv", None), nn.Linear)


# Blocks whose forward code adds a shortcut or multiplies by a gate (functional ops zennit cannot see,
# with no canonizer in zennit 0.5.1), or normalises over channels (no rule): names, so nothing is imported.
_HIDDEN_OPS = {
    "InvertedResidual": "MobileNet's inverted-residual blocks add their shortcut in code",
    "SqueezeExcitation": "squeeze-and-excitation gates multiply the features in code",
    "MBConv": "EfficientNet's blocks add their shortcut and gate their features in code",
    "FusedMBConv": "EfficientNet's blocks add their shortcut in code",
    "CNBlock": "ConvNeXt's blocks use layer norm, a learned layer scale and a shortcut in code",
    "LayerNorm": "layer norm has no relevance rule",
    "GroupNorm": "group norm has no relevance rule",
    "RSU": "U²-Net's blocks add their shortcut and upsample in code",
}


def lrp_model_check(model: LoadedModel) -> str:
    """ "" when zennit's rules cover the model's layers, else why LRP cannot explain it."""
    module = model.module
    if isinstance(module, torch.jit.ScriptModule):
        return (
            "LRP puts zennit's rules on every layer through hooks, which TorchScript programs do not allow."
        )
    modules = list(module.modules())
    if any(_is_attention(m) for m in modules):
        return (
            "LRP here has rules for convolutions, linear layers, batch norms, pooling and activations only: "
            "a transformer's attention (a product of two activations, then a softmax) and its layer norms "
            "have no rule in zennit's composites, so relevance would not be propagated meaningfully. Use the "
            "Transformer attention methods (attention rollout, Chefer et al.) instead."
        )
    hidden = sorted({_HIDDEN_OPS[type(m).__name__] for m in modules if type(m).__name__ in _HIDDEN_OPS})
    if hidden:
        return (
            "LRP needs every operation to be a layer that zennit's rules can see; in this model "
            + "; ".join(hidden)
            + ", so relevance would be neither conserved nor meaningful there. Use a CNN of convolutions, "
            "batch norms, ReLUs and pooling (ResNet, VGG, AlexNet, the demo model)."
        )
    if any(not _mergeable(last, norm) for last, norm in _pairs(module)):
        return (
            "LRP merges each batch norm into the convolution before it (canonization), and in this model "
            "some batch norms come before their convolution or normalise a concatenation (as in DenseNet), "
            "which zennit 0.5.1 has no canonizer for: their scaling would be skipped. Use a CNN whose batch "
            "norms follow their convolutions (ResNet, VGG, the demo model)."
        )
    if not any(isinstance(m, AnyLinear) for m in modules):
        return "LRP redistributes the score through convolutions and linear layers, and this model has none."
    return ""


LESSON = Lesson(
    computes="The target's score is handed backwards through the network, layer by layer, and shared out "
    "among each layer's inputs in proportion to how much each contributed; what reaches the pixels is their "
    "relevance, signed (positive: evidence for the target), and it adds up to the score on a bias-free "
    "network (conservation). The output is seeded with the score itself (for a segmentation class: each "
    "logit of its region), and zennit's rules replace the gradient of each layer:\n\n"
    "- **epsilon_plus_flat**: the first layer *flat*, every other convolution *z+*, dense layers *epsilon*;\n"
    "- **epsilon_gamma_box**: the first convolution *z-box* (its box: the preprocessed all-black and "
    "all-white pictures, per channel), every other convolution *gamma*, dense layers *epsilon*;\n"
    "- **epsilon_alpha2_beta1**: convolutions *alpha2-beta1*, dense layers *epsilon*;\n"
    "- **epsilon_plus**: convolutions *z+*, dense layers *epsilon*;\n"
    "- **epsilon**: *epsilon* in every layer (as epsilon -> 0, gradient x input on a ReLU network).\n\n"
    "In all of them ReLUs (and batch norms merged away by canonization) pass relevance unchanged, average "
    "pooling and ResNet's skip sums share it in proportion to their inputs, and max pooling gives it to "
    "the winner. 'First layer' is the first convolution (or linear layer) in the model's definition.",
    formula=r"\text{LRP-0: } R_j = \sum_k \frac{a_j w_{jk}}{z_k} R_k,\ z_k = \sum_{j'} a_{j'} w_{j'k} + b_k"
    r"\qquad \varepsilon\text{: } R_j = \sum_k \frac{a_j w_{jk}}{z_k + \varepsilon\,\mathrm{sign}(z_k)} R_k"
    r"\qquad \gamma\text{: } R_j = \sum_k \frac{a_j (w_{jk} + \gamma w_{jk}^+)}"
    r"{\sum_{j'} a_{j'} (w_{j'k} + \gamma w_{j'k}^+)} R_k"
    r"\qquad z^+\text{: } R_j = \sum_k \frac{a_j w_{jk}^+}{\sum_{j'} a_{j'} w_{j'k}^+} R_k"
    r"\qquad \alpha\beta\text{: } R_j = \sum_k \left(\alpha \frac{(a_j w_{jk})^+}{\sum_{j'} (a_{j'} w_{j'k})^+}"
    r" - \beta \frac{(a_j w_{jk})^-}{\sum_{j'} (a_{j'} w_{j'k})^-}\right) R_k,\ \alpha - \beta = 1"
    r"\qquad z^{\mathcal{B}}\text{: } R_i = \sum_k \frac{x_i w_{ik} - l_i w_{ik}^+ - h_i w_{ik}^-}"
    r"{\sum_{i'} \left(x_{i'} w_{i'k} - l_{i'} w_{i'k}^+ - h_{i'} w_{i'k}^-\right)} R_k"
    r"\qquad \text{flat: } R_i = \sum_k \frac{1}{\sum_{i'} 1} R_k"
    r"\qquad R^{\text{out}} = S_t(x)\,e_t,\quad M_{hw} = \sum_c R_{chw},\quad \sum_{chw} R_{chw} \approx S_t(x)",
    cost="One forward and one modified backward pass; each convolution's rule redoes its forward once "
    "(epsilon), twice (z+), three times (z-box), four (alpha-beta) or five times (gamma) on the way back.",
    params={
        "composite": "Which rule each layer gets (see above). z+ and gamma keep mostly positive evidence and "
        "give smooth, object-shaped maps; alpha2-beta1 also shows counter-evidence; epsilon everywhere is "
        "as noisy as gradient x input.",
        "epsilon": "The epsilon rule's stabiliser (zennit's default 1e-6 is LRP-0 in effect). Larger values "
        "absorb weak or contradictory contributions: a sparser map whose sum falls below the score.",
        "gamma": "epsilon_gamma_box only: 0 is LRP-0 in the convolutions; larger favours positive weights, "
        "which suppresses counter-evidence and tends towards z+ (gamma -> infinity).",
    },
    pitfalls=(
        "Canonization matters: batch norms are merged into the preceding convolution and ResNet's skip "
        "additions become a module zennit can see (both undone after the pass). Without it a batch norm's "
        "scaling is skipped and the shortcut's plain gradient counts relevance twice; models whose forward "
        "code adds, multiplies or normalises where zennit cannot see it (MobileNet, EfficientNet, ConvNeXt) "
        "are refused, transformers too (attention has no rule here: use the attention methods).",
        "Relevance is not faithful to the score on a network with biases: each bias (and epsilon) absorbs "
        "its share, so the map's sum is not the score (the result's extras give both totals), and a bias "
        "can carry most of a decision that the map then does not show.",
        "The composite changes the picture more than the model does: compare composites before reading "
        "details, and do not compare maps made with different ones.",
        "Its positive maximum lies on the recognised object in every demo scene, but the flat and z-box first "
        "layers spread each unit's relevance over its receptive field, so edges are blurred at that scale.",
        "Detection and keypoint models are not offered: their scores pass through proposals, RoIAlign and "
        "a softmax in code, which have no relevance rule.",
    ),
    compare_with="gradient_x_input",
    paper="Bach et al. 2015, On Pixel-Wise Explanations for Non-Linear Classifier Decisions by Layer-Wise "
    "Relevance Propagation (PLoS ONE); Montavon et al. 2019, Layer-Wise Relevance Propagation: An Overview; "
    "Anders et al. 2021, Software for Dataset-wide XAI: From Local Explanations to Global Insights with "
    "Zennit, CoRelAy, and ViRelAy",
)


register(
    MethodSpec(
        id="lrp",
        family="propagation",
        title="Layer-wise Relevance Propagation (LRP)",
        description="Redistributes the target's score backwards, layer by layer, to the pixels with zennit's "
        "LRP rules; the relevances add up to the score (on a bias-free network). Red: evidence for the "
        "target, blue: against.",
        compute=_lrp,
        params=(
            Param(
                "composite",
                "choice",
                "epsilon_plus_flat",
                "Which rule each layer gets: epsilon_plus_flat (flat first layer, z+ convolutions, epsilon "
                "dense layers), epsilon_gamma_box (z-box first layer, gamma convolutions, epsilon dense), "
                "epsilon_alpha2_beta1, epsilon_plus, or epsilon everywhere (= gradient x input as it -> 0).",
                choices=COMPOSITES,
            ),
            Param(
                "epsilon",
                "float",
                1e-6,
                "Stabiliser of the epsilon rule (dense layers; every layer in 'epsilon'): larger absorbs "
                "weak, contradictory contributions and gives a sparser map.",
                min=1e-9,
                max=10.0,
                step=1e-6,
                log=True,
            ),
            Param(
                "gamma",
                "float",
                0.25,
                "How much the gamma rule (epsilon_gamma_box's convolutions) favours positive contributions.",
                min=0.0,
                max=10.0,
                step=0.05,
            ),
        ),
        cost=lambda p, info: Passes(1, 1, batched=1),
        tasks=TASKS,
        model_check=lrp_model_check,
        reference="Bach et al. 2015; Montavon et al. 2019; zennit (Anders et al. 2021)",
        localises=True,  # positive relevance peaks on the object in every demo scene, for every composite
        lesson=LESSON,
    )
)
