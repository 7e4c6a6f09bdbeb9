"""Gradient family: vanilla gradient, gradient x input, SmoothGrad, Integrated Gradients, Guided Backprop.

Native outputs are [C, H, W]; the map sums channels, which keeps the sign and IG's completeness.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from .base import BATCH_SIZE, SEED, MethodSpec, Param, Passes, register
from .common import BatchDraws, channel_sum, default_blur_sigma, gaussian_blur
from .lesson import Lesson

if TYPE_CHECKING:
    from .context import MethodContext

# Gradient maps are read by magnitude: their sign mostly follows the pixel colours.
_GRADIENT_NOTE = (
    "Its sign mostly follows the pixel colours, so the magnitude (sign: absolute) is usually shown."
)
# Why the pixel-gradient methods do not declare `localises` (tests/core/test_default_maps.py).
PIXEL_NOTE = (
    "Its brightest pixel is not reliably on the recognised object: on a small CNN such as the demo model "
    "the map marks the edges of every high-contrast shape, distractors included, and the background's "
    "texture. Read its overall pattern (a smoothed view helps), not its single maximum."
)


def _gradient(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    raw = ctx.input_grad()[0]
    return raw, channel_sum(raw)


def _gradient_x_input(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    raw = (ctx.input_grad() * ctx.x)[0]
    return raw, channel_sum(raw)


def _guided_backprop(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    raw = ctx.guided_grad()[0]
    return raw, channel_sum(raw)


register(
    MethodSpec(
        id="gradient",
        sign="absolute",
        display="gray",  # Simonyan et al. show the gradient's magnitude in grayscale
        featured={"evaluate": 2},
        family="gradient",
        title="Gradient (saliency)",
        description="How much the target score changes when each pixel changes: d score / d input.",
        compute=_gradient,
        cost=lambda p, info: (1, 1),
        reference="Simonyan et al. 2014, Deep Inside Convolutional Networks",
        lesson=Lesson(
            computes="How much the target score would change if each pixel changed a little: the gradient of the "
            "score with respect to the input, channels summed. " + _GRADIENT_NOTE,
            formula=r"M_{ij} = \sum_{c} \frac{\partial S_t(x)}{\partial x_{cij}}",
            cost="One forward and one backward pass.",
            pitfalls=(
                "Visually noisy: the gradient of a deep network fluctuates sharply from pixel to pixel.",
                PIXEL_NOTE,
                "Saturation: where the score no longer changes (a confident prediction), important pixels can "
                "have tiny gradients.",
                "It answers 'what would change the score', not 'what made the score'.",
            ),
            paper="Simonyan, Vedaldi & Zisserman 2014, Deep Inside Convolutional Networks",
        ),
    )
)
register(
    MethodSpec(
        id="gradient_x_input",
        sign="absolute",
        display="smoothed",  # elementwise products are speckle; blurred, they read as regions
        featured={"compare": 2},
        family="gradient",
        title="Gradient × Input",
        description="The gradient weighted by the input itself: a first-order estimate of each pixel's contribution.",
        compute=_gradient_x_input,
        cost=lambda p, info: (1, 1),
        reference="Shrikumar et al. 2016, Not Just a Black Box",
        lesson=Lesson(
            computes="The gradient multiplied by the input: a first-order estimate of each pixel's contribution "
            "to the score relative to an all-zero input.",
            formula=r"M_{ij} = \sum_{c} x_{cij}\,\frac{\partial S_t(x)}{\partial x_{cij}}",
            cost="One forward and one backward pass (the same pass as the plain gradient, so switching is free).",
            pitfalls=(
                "Pixels whose input value is zero (after normalisation) get no attribution, however important.",
                PIXEL_NOTE,
                "Strongly coloured regions dominate: part of the map is the image itself.",
            ),
            compare_with="edges_sobel",
            paper="Shrikumar et al. 2016, Not Just a Black Box",
        ),
    )
)
register(
    MethodSpec(
        id="guided_backprop",
        sign="absolute",
        display="gray",  # Springenberg et al. show the reconstruction alone
        # Its likeness to an edge detector is the first lesson about saliency maps.
        featured={"compare": 3, "learn": 1},
        family="gradient",
        title="Guided Backpropagation",
        description="The gradient with negative signals stopped at every ReLU on the way back; sharp, but close to an edge detector.",
        compute=_guided_backprop,
        cost=lambda p, info: (1, 1),
        reference="Springenberg et al. 2015, Striving for Simplicity",
        lesson=Lesson(
            computes="The gradient, except that at every ReLU only positive signals pass backwards (where the "
            "forward activation and the incoming gradient are both positive).",
            formula=r"R^{(l)} = \mathbf{1}\!\left[f^{(l)} > 0\right] \cdot \mathbf{1}\!\left[R^{(l+1)} > 0\right] "
            r"\cdot R^{(l+1)}",
            cost="One forward and one backward pass.",
            pitfalls=(
                "It behaves like an edge detector: the map changes little when the class or even the weights "
                "change (Adebayo et al. 2018, Sanity Checks for Saliency Maps). Compare it with the Sobel map "
                "below: if they look alike, the map shows the image more than the model.",
                "Sharp, convincing pictures are not evidence of faithfulness.",
                "Its maximum falls on the target of every bundled demo scene, but only because the target is "
                "the scene's highest-contrast shape: it is not declared to localise, since the map barely "
                "depends on the model.",
            ),
            compare_with="edges_sobel",
            paper="Springenberg et al. 2015, Striving for Simplicity",
        ),
    )
)


# --- SmoothGrad ---------------------------------------------------------------------------------
SMOOTH_BASES = ("gradient", "gradient_x_input", "guided_backprop")


def _smoothgrad(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    p = ctx.params
    x = ctx.x
    sigma = float(p["noise"]) * float(x.max() - x.min())
    draws = BatchDraws(int(p["seed"]))
    n = int(p["samples"])
    base = p["base"]
    total = torch.zeros_like(x[0])
    total_sq = torch.zeros_like(x[0])

    def body(start: int, stop: int) -> None:
        nonlocal total, total_sq
        # One draw per sample keeps the noise independent of the batch size.
        generator = draws.at(start)
        noise = torch.stack([torch.randn(x.shape[1:], generator=generator) for _ in range(start, stop)])
        noisy = x + noise.to(x.device, x.dtype) * sigma
        grads = ctx.guided_gradients(noisy) if base == "guided_backprop" else ctx.gradients(noisy)
        attr = grads * noisy if base == "gradient_x_input" else grads
        total = total + attr.sum(0)
        total_sq = total_sq + (attr * attr).sum(0)

    ctx.for_batches(n, body, "SmoothGrad samples")
    mean = total / n
    mean_sq = total_sq / n
    mode = p["mode"]
    raw = (
        mean
        if mode == "smoothgrad"
        else mean_sq
        if mode == "smoothgrad_sq"
        else (mean_sq - mean * mean).clamp(min=0)
    )
    return raw, channel_sum(raw)


register(
    MethodSpec(
        id="smoothgrad",
        sign="absolute",
        display="gray",  # Smilkov et al. show the averaged magnitude in grayscale
        family="gradient",
        title="SmoothGrad",
        description="Averages a gradient method over noisy copies of the image, which removes much of the visual noise.",
        compute=_smoothgrad,
        params=(
            Param("samples", "int", 25, "Number of noisy copies averaged.", min=1, max=1000, step=1),
            Param(
                "noise",
                "float",
                # The paper's lower end: at 15% the demo model no longer recognises most noisy copies
                # (it saw pixel noise up to ~5% in training) and the mean gradient of those out-of-
                # distribution images is a band along the bottom edge (for every class, and on a plain
                # gray image too: the network's own border asymmetry); at 10% it keeps to the shapes.
                0.10,
                "Noise standard deviation as a fraction of the input's value range "
                "(the paper suggests 10–20%; less for a model that noise confuses).",
                min=0.0,
                max=1.0,
                step=0.01,
            ),
            Param(
                "mode",
                "choice",
                "smoothgrad",
                "smoothgrad: mean of the maps; smoothgrad_sq: mean of their "
                "squares; vargrad: their variance.",
                choices=("smoothgrad", "smoothgrad_sq", "vargrad"),
            ),
            Param(
                "base", "choice", "gradient", "The gradient method that is smoothed.", choices=SMOOTH_BASES
            ),
            SEED,
            BATCH_SIZE,
        ),
        cost=lambda p, info: Passes(int(p["samples"]), int(p["samples"]), batched=int(p["samples"])),
        reference="Smilkov et al. 2017, SmoothGrad; Adebayo et al. 2018 (VarGrad)",
        lesson=Lesson(
            computes="The average of a gradient map over many noisy copies of the image, which cancels the "
            "pixel-to-pixel noise of the gradient.",
            formula=r"\hat M(x) = \frac{1}{n} \sum_{k=1}^{n} M\!\left(x + \varepsilon_k\right), \quad "
            r"\varepsilon_k \sim \mathcal{N}\!\left(0, \sigma^2\right),\ \sigma = \text{noise} \cdot "
            r"(x_{\max} - x_{\min})",
            cost="One forward and one backward pass per sample (25 by default).",
            params={
                "samples": "More samples: a smoother map, linearly more passes.",
                "noise": "Too little leaves the noise; too much blurs the map into the image's layout. 10–20% is "
                "the paper's advice for ImageNet networks; the right level is the largest at which the model "
                "still recognises the noisy copies. Beyond it the map explains the model's response to noise "
                "(on the demo model at 15%: a band along the bottom edge).",
                "mode": "vargrad (the variance) highlights where gradients disagree under noise.",
            },
            pitfalls=(
                "Smoothing can make an unfaithful map look trustworthy.",
                PIXEL_NOTE,
                "Maps depend on the seed at small sample counts.",
            ),
            paper="Smilkov et al. 2017, SmoothGrad",
        ),
    )
)


# --- Integrated Gradients -----------------------------------------------------------------------
IG_RULES = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")
IG_BASELINES = ("zero", "black", "blur", "uniform")


def ig_alphas(steps: int, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """Points on [0, 1] and their quadrature weights (as captum defines each rule)."""
    if rule == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return (nodes + 1) / 2, weights / 2
    if rule == "riemann_trapezoid":
        if steps < 2:
            return np.array([0.5]), np.array([1.0])
        alphas = np.linspace(0, 1, steps)
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] = 0.5 / (steps - 1)
        return alphas, weights
    offset = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[rule]
    return (np.arange(steps) + offset) / steps, np.full(steps, 1.0 / steps)


def ig_baseline(ctx: MethodContext, kind: str, seed: int) -> torch.Tensor:
    """The reference input IG integrates from."""
    x = ctx.x
    if kind == "zero":
        return torch.zeros_like(x)
    if kind == "black":
        return ctx.model.black(x)
    if kind == "blur":
        return gaussian_blur(x, default_blur_sigma(x))
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.rand(x.shape, generator=generator).to(x.device, x.dtype)
    return ctx.model.from_pixels(pixels)


def _integrated_gradients(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    p = ctx.params
    x = ctx.x
    baseline = ig_baseline(ctx, p["baseline"], int(p["seed"]))
    alphas, weights = ig_alphas(int(p["steps"]), p["rule"])
    delta = x - baseline
    total = torch.zeros_like(x[0])

    def body(start: int, stop: int) -> None:
        nonlocal total
        a = torch.as_tensor(alphas[start:stop], dtype=x.dtype, device=x.device).view(-1, 1, 1, 1)
        w = torch.as_tensor(weights[start:stop], dtype=x.dtype, device=x.device).view(-1, 1, 1, 1)
        grads = ctx.gradients(baseline + a * delta)
        total = total + (grads * w).sum(0)

    ctx.for_batches(len(alphas), body, "Integrated Gradients steps")
    raw = delta[0] * total
    # Completeness: the attributions should sum to f(x) - f(baseline); report how far off they are.
    with torch.no_grad():
        f_x = ctx.target(ctx.output()).sum()
        f_b = ctx.target(ctx.model.forward(baseline)).sum()
    ctx.count_passes(1)  # the baseline's score
    ctx.extras["completeness_delta"] = float(raw.sum() - (f_x - f_b))
    ctx.extras["score_difference"] = float(f_x - f_b)
    return raw, channel_sum(raw)


register(
    MethodSpec(
        id="integrated_gradients",
        sign="absolute",
        display="smoothed",  # pixel attributions, blurred to be read over the picture
        family="gradient",
        title="Integrated Gradients",
        description="Accumulates gradients along the straight path from a baseline image to the input; the "
        "attributions sum to the score difference (completeness).",
        compute=_integrated_gradients,
        params=(
            Param(
                "steps",
                "int",
                32,
                "Points on the path from baseline to input; more is more exact.",
                min=2,
                max=1024,
                step=1,
            ),
            Param(
                "baseline",
                "choice",
                "zero",
                "Where the path starts: the all-zero input tensor, a black image, "
                "a blurred copy of the image, or uniform noise.",
                choices=IG_BASELINES,
            ),
            Param(
                "rule", "choice", "gausslegendre", "Quadrature rule for the path integral.", choices=IG_RULES
            ),
            SEED,
            BATCH_SIZE,
        ),
        cost=lambda p, info: Passes(int(p["steps"]) + 2, int(p["steps"]), batched=int(p["steps"])),
        reference="Sundararajan et al. 2017, Axiomatic Attribution for Deep Networks",
        lesson=Lesson(
            computes="Gradients accumulated along the straight path from a baseline image x' (what 'absence' "
            "means) to the input. The attributions add up to the score difference (completeness).",
            formula=r"\mathrm{IG}_i(x) = (x_i - x'_i) \int_0^1 \frac{\partial S_t\big(x' + \alpha (x - x')\big)}"
            r"{\partial x_i}\, d\alpha, \qquad \sum_i \mathrm{IG}_i = S_t(x) - S_t(x')",
            cost="One forward and one backward pass per step (32 by default), plus the baseline.",
            params={
                "steps": "More steps: a more exact integral (check completeness), linearly more passes.",
                "baseline": "The baseline decides the question: a black baseline gives black pixels zero "
                "attribution by construction; a blurred one asks what detail contributed.",
            },
            pitfalls=(
                "There is no neutral baseline: different baselines give different, equally 'correct' maps.",
                PIXEL_NOTE,
                "Too few steps break completeness; the sum no longer matches the score difference.",
            ),
            paper="Sundararajan, Taly & Yan 2017, Axiomatic Attribution for Deep Networks",
        ),
    )
)
