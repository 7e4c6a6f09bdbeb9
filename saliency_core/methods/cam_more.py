"""More class activation maps: Ablation-CAM (gradient-free, one forward pass per channel) and FullGrad
(input-gradient and bias-gradients of every convolution and batch norm, one gradient pass).

Ablation-CAM's native output is [h, w] at the layer's resolution, without ReLU or normalisation, like
the other CAMs; FullGrad's is already at the input's resolution (its terms are upsampled, then summed).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import InvalidParameter
from ..hooks import capture_layers, first_tensor, get_layer, replace_output, select_output, split_layer
from .base import BATCH_SIZE, LAYER, CostInfo, MethodSpec, Passes, register
from .common import upsample
from .lesson import Lesson

if TYPE_CHECKING:
    from ..hooks import ReshapeFn
    from ..models.loaded import LoadedModel
    from .context import MethodContext


# --- Ablation-CAM ---------------------------------------------------------------------------------
def channel_index(shape: tuple[int, ...], reshape: ReshapeFn | None, channels: int) -> torch.Tensor:
    """For one image's layer output of native `shape` ([1, ...]), the CAM channel of each element (-1:
    none, e.g. a class token), flattened. A token or channels-last layout is read through the model's
    reshape by pushing element numbers through it (it only moves and drops elements)."""
    count = 1
    for s in shape[1:]:
        count *= int(s)
    if reshape is None:
        if len(shape) != 4 or shape[1] != channels:
            raise InvalidParameter(
                f"Ablation-CAM needs a [N, C, h, w] layer; this one outputs {tuple(shape)}."
            )
        return torch.arange(channels).repeat_interleave(count // channels)
    numbers = reshape(torch.arange(count, dtype=torch.float64).reshape(1, *shape[1:]))
    if numbers.ndim != 4 or numbers.shape[1] != channels:
        raise InvalidParameter(f"Ablation-CAM cannot read channels from a layer of shape {tuple(shape)}.")
    picked = numbers[0].reshape(channels, -1)
    index = picked.round().long()
    if not torch.equal(index.double(), picked) or index.min() < 0 or index.max() >= count:
        raise InvalidParameter("Ablation-CAM cannot map this layer's reshaped channels back to its output.")
    out = torch.full((count,), -1, dtype=torch.long)
    out[index.flatten()] = torch.arange(channels).repeat_interleave(index.shape[1])
    return out


class _Ablation:
    """Which channel each image of the next batch loses (`rows`; a value >= channels: none)."""

    def __init__(self, channels: int, reshape: ReshapeFn | None) -> None:
        self.channels = channels
        self.reshape = reshape
        self.rows = torch.empty(0, dtype=torch.long)
        self._index: torch.Tensor | None = None

    def apply(self, tensor: torch.Tensor) -> torch.Tensor:
        n = tensor.shape[0]
        if n != len(self.rows):
            raise InvalidParameter(
                f"Ablation-CAM's layer saw a batch of {n} for {len(self.rows)} images; the model does not "
                "pass its input batch through this layer one image per row. Pick another layer."
            )
        if self._index is None or self._index.numel() * n != tensor.numel():
            self._index = channel_index(tuple(tensor.shape), self.reshape, self.channels)
        index = self._index.to(tensor.device)
        keep = index[None, :] != self.rows.to(tensor.device)[:, None]  # [n, elements of one image]
        return torch.where(keep.reshape(tensor.shape), tensor, torch.zeros((), dtype=tensor.dtype))


@contextmanager
def ablating(module: nn.Module, layer: str, state: _Ablation) -> Iterator[_Ablation]:
    """Inside the block, the layer's output has channel `state.rows[i]` zeroed in image i of a batch."""
    key = split_layer(layer)[1]

    def hook(_mod: nn.Module, _inputs: object, output: object) -> object:
        tensor = first_tensor(output) if key is None else select_output(output, key)
        if tensor is None:
            raise InvalidParameter("The chosen layer does not output a tensor; pick another layer.")
        replaced = replace_output(output, key, state.apply(tensor))
        if replaced is None:
            raise InvalidParameter(
                "Ablation-CAM cannot replace this layer's output type; pick another layer."
            )
        return replaced

    handle = get_layer(module, layer).register_forward_hook(hook)
    try:
        yield state
    finally:
        handle.remove()


def _ablation_cam(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    layer = ctx.params["layer"]
    a = ctx.activations(layer)[0]
    x = ctx.x
    k = a.shape[0]
    # k ablated copies and, last, one with nothing ablated: the reference score under the same
    # (batched) arithmetic as the others, whatever the cache holds.
    scores = torch.empty(k + 1, device=x.device)
    state = _Ablation(k, ctx.model.reshape_for(layer))

    def body(start: int, stop: int) -> None:
        state.rows = torch.arange(start, stop)
        scores[start:stop] = ctx.scores(x.expand(stop - start, *x.shape[1:]).contiguous()).to(x.device)

    with ablating(ctx.model.module, layer, state):
        ctx.for_batches(k + 1, body, "Ablation-CAM channels")
    reference = scores[k]
    drops = reference - scores[:k]
    # The paper and pytorch-grad-cam divide by the score; by its magnitude, a negative score keeps
    # the drop's sign (evidence for the target stays positive).
    scale = reference.abs()
    if float(scale) < 1e-12:
        scale = torch.ones_like(scale)
        ctx.extras["unnormalised"] = True  # a zero score: the weights are the plain drops
    weights = (drops / scale).to(a.dtype)
    ctx.extras["score"] = float(reference)
    raw = (weights[:, None, None] * a).sum(0)
    return raw, upsample(raw, tuple(x.shape[-2:]))


def _ablation_cost(p: Mapping[str, Any], info: CostInfo) -> tuple[int, int]:
    # The activations' pass, then one per channel plus the unablated reference, batched.
    return Passes(info.channels + 2, 0, batched=info.channels + 1)


def _ablation_slow_hint(params: Mapping[str, Any], forward_passes: int, when: str, what: str) -> str:
    return (
        f"Ablation-CAM makes one forward pass per channel of {params.get('layer')} ({forward_passes - 2} here) "
        f"through {what}: {when}. Grad-CAM and its variants need one pass; a layer with fewer channels "
        "is cheaper."
    )


register(
    MethodSpec(
        id="ablation_cam",
        localises=True,
        slow_hint=_ablation_slow_hint,
        family="cam",
        title="Ablation-CAM",
        description="Gradient-free: each channel of the layer is weighted by how much the target score drops "
        "when that channel is set to zero (relative to the score).",
        compute=_ablation_cam,
        params=(LAYER, BATCH_SIZE),
        cost=_ablation_cost,
        reference="Desai & Ramaswamy 2020, Ablation-CAM",
        lesson=Lesson(
            computes="Gradient-free: each channel of the layer is zeroed in turn and the network run on from "
            "there; the channel's weight is the relative drop of the target score, and the map is the weighted "
            "sum of the channels.",
            formula=r"\alpha_k = \frac{S_t(A) - S_t(A_{k \leftarrow 0})}{\lvert S_t(A) \rvert}, \qquad "
            r"M = \sum_k \alpha_k A^k \quad (\text{shown: } \mathrm{ReLU}(M), \text{ upsampled})",
            cost="One forward pass per channel of the layer, plus the activations and the unablated score "
            "(514 passes at ResNet-18's layer4); batched, but hundreds to thousands on wide layers.",
            params={
                "layer": "The channels ablated; a layer with fewer channels is proportionally cheaper.",
                "batch_size": "Ablated copies per forward pass; only speed and memory, never the map.",
            },
            pitfalls=(
                "Slow on wide layers: one pass per channel.",
                "Channels act together: zeroing one at a time misses redundancy (two channels that each "
                "suffice get weight zero) and interactions.",
                "Zero is not 'absent' for layers with negative activations (no ReLU before them); "
                "pytorch-grad-cam then ablates with a very negative value instead, the paper and this "
                "library with zero.",
                "The weights are divided by |score|: only a global scale, but a score near zero makes it huge.",
            ),
            compare_with="scorecam",
            paper="Desai & Ramaswamy 2020, Ablation-CAM: Visual Explanations for Deep Convolutional Network "
            "via Gradient-free Localization (WACV)",
        ),
    )
)


# --- FullGrad ---------------------------------------------------------------------------------------
def _frozen_batch_norm() -> tuple[type, ...]:
    try:  # torchvision's detectors freeze their backbones' batch norms
        from torchvision.ops.misc import FrozenBatchNorm2d
    except ImportError:  # pragma: no cover - torchvision is a dependency
        return ()
    return (FrozenBatchNorm2d,)


def bias_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers FullGrad reads, as pytorch-grad-cam picks them: convolutions and batch norms (exactly
    those types: subclasses such as timm's BatchNormAct2d output more than the affine map) with a bias,
    batch norms with running statistics; torchvision's frozen batch norm too."""
    norms = (nn.BatchNorm2d, *_frozen_batch_norm())

    def reads(sub: nn.Module) -> bool:
        if type(sub) is nn.Conv2d:
            return sub.bias is not None
        return type(sub) in norms and sub.bias is not None and sub.running_mean is not None

    return [(name, sub) for name, sub in module.named_modules() if reads(sub)]


def effective_bias(layer: nn.Module) -> torch.Tensor:
    """The constant a layer adds per channel: a convolution's bias; a batch norm's beta - mu * gamma / sigma."""
    if isinstance(layer, nn.Conv2d):
        return layer.bias.detach()
    weight = layer.weight if layer.weight is not None else torch.ones_like(layer.bias)
    std = torch.sqrt(layer.running_var + layer.eps)
    return (layer.bias - layer.running_mean * weight / std).detach()


def normalise_channels(t: torch.Tensor) -> torch.Tensor:
    """Each channel of [C, h, w] shifted to minimum 0 and divided by (1e-7 + its maximum), as
    pytorch-grad-cam's scale_cam_image does (the eps is its)."""
    flat = t.reshape(t.shape[0], -1)
    flat = flat - flat.min(dim=1, keepdim=True).values
    flat = flat / (1e-7 + flat.max(dim=1, keepdim=True).values)
    return flat.reshape(t.shape)


def _fullgrad(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    module = ctx.model.module
    layers = bias_layers(module)
    names = [name for name, _ in layers]
    target = ctx.target
    if target is None:
        raise InvalidParameter("FullGrad needs a target (a class, box, keypoint or mask) to explain.")
    x = ctx.x.detach().clone().requires_grad_(True)
    with torch.enable_grad(), capture_layers(module, names) as cap:
        score = target(ctx.model.forward(x)).sum()
        if not score.requires_grad:
            raise InvalidParameter("The target score does not depend on the input, so it has no gradient.")
        used = [(n, layer) for n, layer in layers if n in cap.outputs and cap.outputs[n].requires_grad]
        grads = torch.autograd.grad(score, [x] + [cap.outputs[n] for n, _ in used], allow_unused=True)
    ctx.count_passes(1, 1)
    size = tuple(x.shape[-2:])
    input_grad = grads[0] if grads[0] is not None else torch.zeros_like(x)
    total = normalise_channels((input_grad * x).detach()[0].abs().float()).sum(0)
    for (_, layer), grad in zip(used, grads[1:]):
        if grad is None or grad.ndim != 4:
            continue  # the score does not reach this layer, or it is not a spatial map
        bias = effective_bias(layer).to(grad.device, grad.dtype)
        term = normalise_channels((grad[0] * bias[:, None, None]).abs().float()).sum(0)
        # Bilinear upsampling is linear: summing channels first equals upsampling each, at 1/C the work.
        total = total + upsample(term, size)
    ctx.extras["bias_layers"] = len(used)
    return total, total.clone()


def _is_attention(m: nn.Module) -> bool:
    # torch's attention, or timm's and Swin's (a qkv projection); not squeeze-excite "attention" in CNNs.
    return isinstance(m, nn.MultiheadAttention) or isinstance(getattr(m, "qkv", None), nn.Linear)


def _fullgrad_model_check(model: LoadedModel) -> str:
    module = model.module
    if isinstance(module, torch.jit.ScriptModule):
        return "FullGrad reads every convolution's output through hooks, which TorchScript programs do not allow."
    if any(_is_attention(m) for m in module.modules()):
        return (
            "FullGrad sums bias-gradients of convolutions and batch norms; a transformer's biases sit in linear "
            "and layer-norm layers on tokens, which it does not cover, so its map would be mostly the input "
            "gradient. Use a gradient or attention method."
        )
    if not bias_layers(module):
        return (
            "FullGrad needs convolutions or batch norms with a bias (its bias-gradient maps), and this model has "
            "none: its map would be only gradient × input."
        )
    return ""


register(
    MethodSpec(
        id="fullgrad",
        localises=False,  # its maximum misses the object on most demo scenes (see pitfalls)
        family="cam",
        title="FullGrad",
        description="Gradient × input plus, for every convolution and batch norm, the gradient at its output "
        "times its bias, each in absolute value and normalised, summed over all layers at the input's size.",
        compute=_fullgrad,
        params=(),
        cost=lambda p, info: Passes(1, 1),
        reference="Srinivas & Fleuret 2019, Full-Gradient Representation for Neural Network Visualization",
        model_check=_fullgrad_model_check,
        lesson=Lesson(
            computes="The full-gradient decomposition: the output equals gradient × input plus, for every "
            "layer with a bias, gradient × bias. FullGrad shows all of them: the input term and each "
            "convolution's and batch norm's bias-gradient map, in absolute value, normalised per channel, "
            "upsampled and summed. It uses every layer, so it takes no layer parameter.",
            formula=r"S = \psi\!\left(\nabla_x f \odot x\right) + \sum_{l} \sum_{c \in l} "
            r"\psi\!\left(\frac{\partial f}{\partial z^l_c} \, b^l_c\right), \qquad "
            r"\psi(m) = \mathrm{up}\!\left(\frac{|m| - \min |m|}{\max(|m| - \min |m|)}\right), \qquad "
            r"b^{\mathrm{BN}}_c = \beta_c - \frac{\mu_c \gamma_c}{\sqrt{\sigma^2_c + \epsilon}}",
            cost="One forward and one backward pass, whatever the depth.",
            pitfalls=(
                "Only convolutions and batch norms count: biases of linear and layer-norm layers (ConvNeXt's "
                "blocks, transformers, which have little else) are left out, so the decomposition is then "
                "incomplete; a network without such biases gives only gradient × input.",
                "Every channel is normalised to [0, 1] on its own, so weak channels weigh as much as strong "
                "ones; the official code normalises each layer as a whole, which gives a different map.",
                "Absolute values: the map shows importance, not whether evidence is for or against the target.",
                "Its maximum need not lie on the object: every channel of every layer reaches 1 after its own "
                "normalisation, so early edge-like channels and the input term add sharp peaks on edges and "
                "texture anywhere (on the demo model the peak misses the object in most scenes).",
            ),
            compare_with="gradient_x_input",
            paper="Srinivas & Fleuret 2019, Full-Gradient Representation for Neural Network Visualization "
            "(NeurIPS)",
        ),
    )
)
