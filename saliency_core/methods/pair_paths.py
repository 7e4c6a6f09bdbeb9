"""Path methods of PAIR saliency: Guided Integrated Gradients (a path the gradients choose) and Blur IG
(the path of decreasing Gaussian blur), written in torch after `saliency.core.guided_ig` / `blur_ig`.

Native outputs are [C, H, W]; the map sums channels, which keeps the sign and the completeness sum.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from ..errors import InvalidParameter
from .base import BATCH_SIZE, SEED, MethodSpec, Param, Passes, register
from .common import channel_sum
from .gradients import IG_BASELINES, PIXEL_NOTE, ig_baseline
from .lesson import Lesson

if TYPE_CHECKING:
    from .context import MethodContext

_EPSILON = 1e-9  # PAIR's tolerance for "the step reached its L1 target"
_TRUNCATE = 4.0  # scipy.ndimage.gaussian_filter's default kernel radius, in sigmas
_PAIR_NOTE = (
    "The authors' library (PAIR saliency) draws these maps as the absolute channel sum in grayscale "
    "(VisualizeImageGrayscale)."
)


# --- Guided IG ------------------------------------------------------------------------------------
def guided_ig_path(
    x_input: torch.Tensor,
    x_baseline: torch.Tensor,
    grad_fn: Callable[[torch.Tensor], torch.Tensor],
    steps: int,
    fraction: float,
    max_dist: float,
    on_step: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PAIR's `guided_ig_impl` in float64: (attribution, the path's last point), both shaped like x.

    `grad_fn(point)` gives the target's gradient at a float64 point; it is called once per step, in
    order, because each step's gradient chooses where the path goes next.
    """
    x_in = x_input.detach().to("cpu", torch.float64)
    x_b = x_baseline.detach().to("cpu", torch.float64)
    x = x_b.clone()
    attr = torch.zeros_like(x_in)
    diff = x_in - x_b
    l1_total = float(diff.abs().sum())
    if l1_total == 0:
        return attr, x
    moving = diff != 0
    safe_diff = torch.where(moving, diff, torch.ones_like(diff))
    # np.quantile(..., interpolation="lower") is the k-th smallest value, k = floor(q * (n - 1)) + 1.
    k = math.floor(fraction * (x.numel() - 1)) + 1
    for step in range(steps):
        if on_step is not None:
            on_step(step)
        grad_actual = grad_fn(x).detach().to("cpu", torch.float64).reshape(x.shape)
        if not torch.isfinite(grad_actual).all():
            raise InvalidParameter("The target's gradient is not finite on the Guided IG path.")
        grad = grad_actual.clone()
        alpha = (step + 1.0) / steps
        alpha_min, alpha_max = max(alpha - max_dist, 0.0), min(alpha + max_dist, 1.0)
        x_min, x_max = x_b + diff * alpha_min, x_b + diff * alpha_max
        l1_target = l1_total * (1 - (step + 1) / steps)
        gamma = math.inf
        while gamma > 1.0:
            x_old = x.clone()
            x_alpha = torch.where(moving, (x - x_b) / safe_diff, torch.full_like(x, alpha_max))
            # Features that fell behind the band around the straight line are pulled up to its edge.
            x = torch.where(x_alpha < alpha_min, x_min, x)
            l1_current = float((x - x_in).abs().sum())
            if math.isclose(l1_target, l1_current, rel_tol=_EPSILON, abs_tol=_EPSILON):
                attr += (x - x_old) * grad_actual
                break
            grad[x == x_max] = math.inf  # features at the band's front edge cannot move this step
            size = grad.abs()
            threshold = size.flatten().kthvalue(k).values
            chosen = (size <= threshold) & (grad != math.inf)
            l1_s = float(((x - x_max).abs() * chosen).sum())
            if l1_s <= 0:
                break  # nothing left to move (PAIR would loop forever here)
            gamma = (l1_current - l1_target) / l1_s
            # The smallest gradients move first: all the way to the front edge, or the part that
            # closes the gap to this step's L1 target.
            x = torch.where(chosen, x_max if gamma > 1.0 else x + (x_max - x) * gamma, x)
            attr += (x - x_old) * grad_actual
    return attr, x


def _score(ctx: MethodContext, x: torch.Tensor | None) -> float:
    with torch.no_grad():
        out = ctx.output() if x is None else ctx.model.forward(x)
        return float(ctx.target(out).sum())


def _guided_ig(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    p = ctx.params
    x = ctx.x
    baseline = ig_baseline(ctx, p["baseline"], int(p["seed"]))
    steps = int(p["steps"])

    def grad_fn(point: torch.Tensor) -> torch.Tensor:
        return ctx.gradients(point.to(x.device, x.dtype))

    attr, end = guided_ig_path(
        x,
        baseline,
        grad_fn,
        steps,
        float(p["fraction"]),
        float(p["max_dist"]),
        on_step=lambda i: ctx.step(i, steps, "Guided IG steps"),
    )
    ctx.step(steps, steps, "Guided IG steps")
    raw = attr[0].to(x.device, x.dtype)
    difference = _score(ctx, None) - _score(ctx, baseline)
    ctx.count_passes(1)  # the baseline's score
    ctx.extras["completeness_delta"] = float(attr.sum()) - difference
    ctx.extras["score_difference"] = difference
    ctx.extras["path_end_distance"] = float((end - x.detach().cpu().double()).abs().sum())
    return raw, channel_sum(raw)


register(
    MethodSpec(
        id="guided_ig",
        sign="absolute",
        display="gray",  # PAIR's VisualizeImageGrayscale: the magnitude alone
        family="gradient",
        title="Guided Integrated Gradients",
        description="Integrated Gradients on an adaptive path: at every step the features with the smallest "
        "gradient move first, which keeps the path away from the noisy directions of the straight line.",
        compute=_guided_ig,
        params=(
            Param("steps", "int", 200, "Steps on the path (one gradient each).", min=2, max=1024, step=1),
            Param(
                "fraction",
                "float",
                0.25,
                "Share of the features (those of smallest gradient) that move at each sub-step.",
                min=0.01,
                max=1.0,
                step=0.01,
            ),
            Param(
                "max_dist",
                "float",
                0.02,
                "How far (as a share of the way) a feature may run ahead of the straight-line path: 0 is "
                "plain IG, 1 is unbounded.",
                min=0.0,
                max=1.0,
                step=0.01,
            ),
            Param(
                "baseline",
                "choice",
                "zero",
                "Where the path starts: the all-zero input tensor, a black image, a blurred copy of the "
                "image, or uniform noise.",
                choices=IG_BASELINES,
            ),
            SEED,
        ),
        cost=lambda p, info: Passes(int(p["steps"]) + 2, int(p["steps"])),
        reference="Kapishnikov et al. 2021, Guided Integrated Gradients (PAIR saliency)",
        lesson=Lesson(
            computes="A path method like Integrated Gradients, but the path from the baseline x' to the input "
            "adapts to the model: at each of the steps, the features whose gradient is smallest in "
            "magnitude move towards the input first, until the path has covered its share of the L1 "
            "distance; no feature may run more than max_dist ahead of the straight line. The gradient "
            "at each point is multiplied by how far each feature moved, so the attributions still add up "
            "to the score difference. " + _PAIR_NOTE,
            formula=r"\mathrm{GIG}_i = \sum_{k=0}^{K-1} \big(\gamma^{k+1}_i - \gamma^{k}_i\big)\, "
            r"\frac{\partial S_t(\gamma^{k})}{\partial x_i}, \quad \gamma^{0} = x',\ \gamma^{K} = x,"
            r"\quad \gamma^{k+1} \text{ moves the features of smallest } "
            r"\left|\partial S_t / \partial x_i\right| \text{ first}",
            cost="One forward and one backward pass per step (200 by default), one after the other since "
            "each gradient decides the next point; plus the input's and the baseline's scores.",
            params={
                "steps": "More steps: a finer path and better completeness, linearly more passes (they "
                "cannot be batched).",
                "fraction": "Smaller: the path is steered more finely (more sub-steps per step, no extra "
                "passes).",
                "max_dist": "0 makes it Integrated Gradients with the left Riemann rule; 1 lets the path "
                "wander anywhere in the box between baseline and input. PAIR's default is 0.02.",
                "baseline": "As for Integrated Gradients: the baseline decides what 'absent' means.",
            },
            pitfalls=(
                PIXEL_NOTE,
                "The path depends on the gradients, so the steps run one at a time: no batching, and on a "
                "fast device it is slower than Integrated Gradients with the same steps.",
                "Completeness holds only as well as the Riemann sum: check completeness_delta, raise steps.",
                "Features whose gradient stays small move early at a point the model barely responds to; "
                "their attribution is small by design, which is the noise reduction, not proof that they "
                "do not matter.",
                "The path jumps with the gradients (a quantile picks the features that move): last-bit "
                "differences in a gradient (another device, memory layout or batch) can send it elsewhere; "
                "on a random ResNet-18 a channels-last copy of the input changed the map by 4-60%.",
                "There is no neutral baseline; the map changes with it.",
            ),
            compare_with="integrated_gradients",
            paper="Kapishnikov, Venugopalan, Avci, Wedin, Terry & Bolukbasi 2021, Guided Integrated "
            "Gradients: an Adaptive Path Method for Removing Noise (CVPR)",
        ),
    )
)


# --- Blur IG --------------------------------------------------------------------------------------
def blur_sigmas(steps: int, max_sigma: float, sqrt: bool) -> list[float]:
    """PAIR's steps + 1 sigmas from 0: i * max_sigma / steps, or its square root (so the last is
    sqrt(max_sigma))."""
    sigmas = [i * max_sigma / steps for i in range(steps + 1)]
    return [math.sqrt(s) for s in sigmas] if sqrt else sigmas


def blur_matrix(n: int, sigma: float) -> torch.Tensor:
    """The [n, n] float64 operator of scipy.ndimage.gaussian_filter1d along one axis as PAIR calls it
    (mode="constant": zeros outside, truncate=4: radius int(4 sigma + 0.5)); identity for sigma 0."""
    if sigma == 0:
        return torch.eye(n, dtype=torch.float64)
    radius = int(_TRUNCATE * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 / (sigma * sigma) * offsets**2)
    kernel = kernel / kernel.sum()
    index = torch.arange(n)
    d = index[None, :] - index[:, None]
    inside = d.abs() <= radius
    return torch.where(inside, kernel[(d + radius).clamp(0, 2 * radius)], torch.zeros(()).double())


def blur_and_slope(x: torch.Tensor, sigma: float, grad_step: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(x blurred at sigma, PAIR's finite difference (blur(sigma + grad_step) - blur(sigma)) / grad_step)
    for x [..., H, W]. The difference of the two operators is formed in float64 before it meets x
    ((K1 X L1' - K0 X L0') = (K1 - K0) X L1' + K0 X (L1 - L0)'), so a float32 x loses no digits to the
    subtraction."""
    h, w = x.shape[-2:]
    ky0, kx0 = blur_matrix(h, sigma), blur_matrix(w, sigma)
    ky1, kx1 = blur_matrix(h, sigma + grad_step), blur_matrix(w, sigma + grad_step)

    def cast(m: torch.Tensor) -> torch.Tensor:
        return m.to(x.device, x.dtype)

    rows = cast(ky0) @ x
    blurred = rows @ cast(kx0).T
    slope = cast((ky1 - ky0) / grad_step) @ x @ cast(kx1).T + rows @ cast((kx1 - kx0) / grad_step).T
    return blurred, slope


def _blur_ig(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    p = ctx.params
    x = ctx.x
    steps, grad_step = int(p["steps"]), float(p["grad_step"])
    sigmas = blur_sigmas(steps, float(p["max_sigma"]), bool(p["sqrt"]))
    total = torch.zeros_like(x[0])

    def body(start: int, stop: int) -> None:
        nonlocal total
        pairs = [blur_and_slope(x[0], sigmas[i], grad_step) for i in range(start, stop)]
        points = torch.stack([b for b, _ in pairs])
        grads = ctx.gradients(points)
        # Each step weighted by its own sigma interval (PAIR weights a whole batch by its last one's,
        # which differs only under sqrt spacing with batch_size > 1).
        widths = torch.tensor([sigmas[i + 1] - sigmas[i] for i in range(start, stop)], dtype=x.dtype)
        slopes = torch.stack([s for _, s in pairs])
        total = total + (widths.to(x.device).view(-1, 1, 1, 1) * slopes * grads).sum(0)

    ctx.for_batches(steps, body, "Blur IG steps")
    # The path runs from the most blurred image to the input, against increasing sigma.
    raw = -total
    blurred = blur_and_slope(x, sigmas[-1], grad_step)[0]
    difference = _score(ctx, None) - _score(ctx, blurred)
    ctx.count_passes(1)  # the most blurred image's score
    ctx.extras["completeness_delta"] = float(raw.sum()) - difference
    ctx.extras["score_difference"] = difference
    ctx.extras["max_sigma_reached"] = sigmas[-1]
    return raw, channel_sum(raw)


register(
    MethodSpec(
        id="blur_ig",
        sign="absolute",
        display="gray",  # PAIR's VisualizeImageGrayscale: the magnitude alone
        family="gradient",
        title="Blur Integrated Gradients",
        description="Integrated Gradients along the path from a strongly blurred copy of the image to the "
        "image itself: what detail, at which scale, the score gains from.",
        compute=_blur_ig,
        params=(
            Param(
                "steps", "int", 100, "Blur levels on the path (one gradient each).", min=1, max=1024, step=1
            ),
            Param(
                "max_sigma",
                "float",
                50.0,
                "Blur (Gaussian sigma, pixels) where the path starts.",
                min=0.5,
                max=500.0,
                step=0.5,
                log=True,
            ),
            Param(
                "grad_step",
                "float",
                0.01,
                "Sigma step of the finite difference that gives the blur's rate of change.",
                min=1e-4,
                max=1.0,
                step=1e-4,
                log=True,
            ),
            Param(
                "sqrt",
                "bool",
                False,
                "PAIR's square-root spacing: sigma_i = sqrt(i max_sigma / steps), denser near the image "
                "(the path then starts at sqrt(max_sigma)).",
            ),
            BATCH_SIZE,
        ),
        cost=lambda p, info: Passes(int(p["steps"]) + 2, int(p["steps"]), batched=int(p["steps"])),
        reference="Xu et al. 2020, Attribution in Scale and Space (PAIR saliency)",
        lesson=Lesson(
            computes="A path method whose path is the image blurred less and less: from a Gaussian blur of "
            "max_sigma (where the detail is gone) down to the image. The gradient at each blur level is "
            "multiplied by how fast each pixel changes with the blur, so a pixel is credited for the "
            "detail that, when it appears, raises the score. No baseline image is needed, and the "
            "attributions add up to S(x) - S(blurred x). " + _PAIR_NOTE,
            formula=r"\mathrm{BlurIG}_i = \int_{\sigma_{\max}}^{0} \frac{\partial S_t(L(x,\sigma))}"
            r"{\partial L_i}\, \frac{\partial L_i(x,\sigma)}{\partial \sigma}\, d\sigma"
            r"\ \approx\ -\sum_{k=0}^{K-1} (\sigma_{k+1}-\sigma_k)\, \frac{L_i(x,\sigma_k+h) - L_i(x,\sigma_k)}"
            r"{h}\, \frac{\partial S_t(L(x,\sigma_k))}{\partial L_i},"
            r"\quad L(x,\sigma) = G_\sigma * x",
            cost="One forward and one backward pass per blur level (100 by default), batched; plus the "
            "input's and the most blurred image's scores. The blurs themselves are cheap matrix products.",
            params={
                "max_sigma": "The blur at the start of the path: large enough that the model no longer sees "
                "the object (the paper's 50 px is for 224–299 px images). The blur pads with zeros, as "
                "PAIR's scipy call does, so a large sigma also fades the image towards the all-zero "
                "tensor (the mean colour for a normalised model).",
                "grad_step": "The finite difference's sigma step; too small loses precision, too large "
                "averages over scales.",
                "sqrt": "Square-root spacing puts more steps at small sigmas, where the image changes "
                "fastest; note that it ends the path at sqrt(max_sigma), not max_sigma.",
            },
            pitfalls=(
                PIXEL_NOTE,
                "The start of the path is a blurred image, not 'nothing': a model that recognises the "
                "blurred object gets little attribution for it (check score_difference).",
                "The first step (sigma 0 to a tiny sigma) contributes nothing: a Gaussian that narrow is "
                "the identity after truncation, as in PAIR.",
                "Completeness is approximate (left Riemann sum and a finite difference): check "
                "completeness_delta and raise steps.",
            ),
            compare_with="integrated_gradients",
            paper="Xu, Venugopalan & Sundararajan 2020, Attribution in Scale and Space (CVPR)",
        ),
    )
)
