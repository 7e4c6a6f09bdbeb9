"""Reference-based gradient methods: DeepLIFT (rescale rule), DeepLIFT-SHAP and GradientSHAP.

Each explains the score difference between the input and a reference input (or a distribution of
them). Native outputs are [C, H, W]; the map sums channels, which keeps the summation-to-delta property.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .base import BATCH_SIZE, SEED, MethodSpec, Param, Passes, register
from .baselines import DISTRIBUTION_HELP, DISTRIBUTIONS, reference_count, reference_set
from .common import BatchDraws, channel_sum
from .deeplift_rules import known_nonlinearities, rescale_rules
from .gradients import IG_BASELINES, ig_baseline
from .lesson import Lesson

if TYPE_CHECKING:
    from ..models.loaded import LoadedModel
    from .context import MethodContext

# DeepLIFT pairs each input with its reference neuron by neuron: a detector's heads work on proposals
# that differ between the two images (and the chosen box may not be detected on the reference at all).
DEEPLIFT_TASKS = ("classification", "segmentation", "salient_object")
_NOTE_PIXELS = (
    "Its map is pixel-level, like the gradient's: its maximum (the single brightest pixel) is not "
    "reliably on the recognised object; read the overall pattern (the smoothed view helps)."
)
_PITFALL_FUNCTIONAL = (
    "The rule only replaces nonlinearity modules (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.ELU, nn.SiLU, nn.GELU, "
    "nn.Softplus, nn.LeakyReLU, ... and nn.MaxPool2d). Functional calls (F.relu, torch.sigmoid), softmax, "
    "attention products and LayerNorm keep their plain gradient: the map then mixes DeepLIFT with "
    "gradient × (input − reference), and the sum no longer equals the score difference "
    "(extras['summation_delta'] shows by how much)."
)
_PITFALL_RESCALE = (
    "Only the rescale rule is implemented, not the paper's reveal-cancel rule, which treats positive and "
    "negative contributions separately; rescale can miss a feature whose positive and negative effects "
    "cancel at a unit (the min/max example of Shrikumar et al.)."
)


def deeplift_model_check(model: LoadedModel) -> str:
    """Why DeepLIFT cannot explain `model` ("" when it can): it needs nonlinearity modules it knows."""
    if known_nonlinearities(model.module):
        return ""
    return (
        "DeepLIFT's rescale rule replaces nonlinearity modules (nn.ReLU, nn.Sigmoid, nn.MaxPool2d, ...), and "
        "this model has none: it is linear or calls functional activations (F.relu), so DeepLIFT would "
        "silently equal gradient × (input − reference)."
    )


def deeplift_terms(ctx: MethodContext, refs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ over references of (x - ref) * DeepLIFT multipliers, [C, H, W], and Σ of their scores.

    One batch [x, ..., x, ref_1, ..., ref_k]: the rescale rule pairs its halves element by element."""
    x = ctx.x
    k = len(refs)
    grads = ctx.gradients(torch.cat([x.expand(k, *x.shape[1:]), refs]), rules=rescale_rules)[:k]
    scores = ctx.scores(refs, score=ctx.target)  # for the summation-to-delta check
    return ((x - refs) * grads).sum(0), scores.sum()


def _summation(ctx: MethodContext, raw: torch.Tensor, mean_ref_score: torch.Tensor) -> None:
    """Summation-to-delta: the attributions should add up to f(x) - f(ref); report how far off."""
    with torch.no_grad():
        f_x = ctx.target(ctx.output()).sum().float().cpu()
    difference = f_x - mean_ref_score.float().cpu()
    ctx.extras["summation_delta"] = float(raw.sum().float().cpu() - difference)
    ctx.extras["score_difference"] = float(difference)


def _deeplift(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    p = ctx.params
    ref = ig_baseline(ctx, p["baseline"], int(p["seed"]))
    raw, ref_score = deeplift_terms(ctx, ref)
    _summation(ctx, raw, ref_score)
    return raw, channel_sum(raw)


def _deeplift_shap(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    p = ctx.params
    refs = reference_set(ctx, p["distribution"], int(p["baselines"]), int(p["seed"]))
    n = len(refs)
    total = torch.zeros_like(ctx.x[0])
    ref_scores = torch.zeros((), dtype=torch.float64)

    def body(start: int, stop: int) -> None:
        nonlocal total, ref_scores
        attr, scores = deeplift_terms(ctx, refs[start:stop])
        total = total + attr
        ref_scores = ref_scores + scores.double().cpu()

    # Each reference is a batch pair: a batch of k references makes 2k passes with gradients.
    ctx.for_batches(n, body, "DeepLIFT references")
    raw = total / n
    _summation(ctx, raw, ref_scores / n)
    return raw, channel_sum(raw)


_DEEPLIFT_FORMULA = (
    r"m_{\Delta x \Delta y} = \frac{f(x) - f(x')}{x - x'} \ \text{at every nonlinearity}, \qquad "
    r"R_i = (x_i - x'_i)\, \frac{\partial^{\,m} S_t}{\partial x_i}, \qquad "
    r"\sum_i R_i = S_t(x) - S_t(x')"
)
_BASELINE_TEXT = (
    "The reference decides the question: a zero (mean-colour) or black reference asks what made the "
    "score differ from an empty picture; a blurred one asks what fine detail contributed."
)

register(
    MethodSpec(
        id="deeplift",
        sign="absolute",
        display="smoothed",  # pixel attributions, blurred to be read over the picture
        family="propagation",
        title="DeepLIFT",
        description="Propagates the difference between the input and a reference image backwards with "
        "DeepLIFT's rescale rule; the attributions sum to the score difference.",
        compute=_deeplift,
        params=(
            Param(
                "baseline",
                "choice",
                "zero",
                "The reference image: the all-zero input tensor, a black image, a blurred copy of the "
                "image, or uniform noise.",
                choices=IG_BASELINES,
            ),
            SEED,
        ),
        # The score of the input, the [input, reference] pair with gradients, the reference's score.
        cost=lambda p, info: Passes(4, 2),
        tasks=DEEPLIFT_TASKS,
        model_check=deeplift_model_check,
        reference="Shrikumar, Greenside & Kundaje 2017, Learning Important Features Through Propagating "
        "Activation Differences",
        lesson=Lesson(
            computes="How each pixel's difference from a reference image x' contributes to the score's "
            "difference. The input and the reference run through the network together; at every "
            "nonlinearity the backward pass multiplies by the slope of the secant between the two "
            "activations (the rescale rule) instead of the local derivative, so saturated units still pass "
            "credit back. The attributions add up exactly to S(x) − S(x') (summation-to-delta).",
            formula=_DEEPLIFT_FORMULA,
            cost="One forward and one backward pass over the two-image batch [input, reference], plus one "
            "forward each for the input's and the reference's scores (the summation check).",
            params={
                "baseline": _BASELINE_TEXT,
                "seed": "Only used by the uniform-noise reference.",
            },
            pitfalls=(
                "There is no neutral reference: each one gives a different, equally 'complete' map.",
                "Saturation is handled only relative to the reference: a unit that is flat at the input "
                "but differs from the reference still passes credit (the gradient would pass none), yet a "
                "unit whose input and reference both sit in its flat region passes nothing.",
                _PITFALL_RESCALE,
                _PITFALL_FUNCTIONAL,
                "Detectors are not offered: their heads work on region proposals that differ between the "
                "input and the reference, so there are no paired neurons, and the chosen box may not even "
                "be detected on the reference.",
                _NOTE_PIXELS,
            ),
            compare_with="integrated_gradients",
            paper="Shrikumar, Greenside & Kundaje 2017, Learning Important Features Through Propagating "
            "Activation Differences (ICML)",
        ),
    )
)


def _shap_cost(p: dict, info: object) -> Passes:
    n = reference_count(p["distribution"], int(p["baselines"]))
    # The input's score; per reference a pair with gradients (2 passes) and the reference's score.
    return Passes(1 + 3 * n, 2 * n, batched=2 * n)


register(
    MethodSpec(
        id="deeplift_shap",
        sign="absolute",
        display="smoothed",
        family="propagation",
        title="DeepLIFT-SHAP",
        description="DeepLIFT averaged over a distribution of reference images: an estimate of SHAP values "
        "relative to that distribution.",
        compute=_deeplift_shap,
        params=(
            Param("distribution", "choice", "blur", DISTRIBUTION_HELP, choices=DISTRIBUTIONS),
            Param(
                "baselines",
                "int",
                8,
                "How many references are drawn from the distribution (at most the number of bundled "
                "samples for 'samples'; 'black' is a single image).",
                min=1,
                max=64,
                step=1,
            ),
            SEED,
            BATCH_SIZE,
        ),
        cost=_shap_cost,
        tasks=DEEPLIFT_TASKS,
        model_check=deeplift_model_check,
        reference="Lundberg & Lee 2017, A Unified Approach to Interpreting Model Predictions",
        lesson=Lesson(
            computes="DeepLIFT repeated against several reference images drawn from a distribution "
            "(blurred copies, noise, sample photographs), each with its own rescale multipliers, and "
            "averaged. Lundberg & Lee show this approximates SHAP values for a background distribution; the "
            "attributions add up to the score minus the references' mean score.",
            formula=r"\phi_i = \frac{1}{K} \sum_{k=1}^{K} (x_i - x'_{k,i})\, m^{(k)}_i, \qquad "
            r"\sum_i \phi_i = S_t(x) - \frac{1}{K} \sum_{k} S_t(x'_k)",
            cost="Per reference: one forward and one backward pass over an [input, reference] pair and "
            "one forward for the reference's score (8 references by default), plus the input's score.",
            params={
                "distribution": "The background defines 'absence': blur asks about detail at several "
                "scales, samples about what sets this picture apart from other pictures.",
                "baselines": "More references: a steadier average, linearly more passes.",
            },
            pitfalls=(
                "SHAP values are only as meaningful as the background distribution.",
                "It is exact SHAP only for linear models and under feature independence; for deep networks it "
                "is an approximation built from DeepLIFT's linearisation.",
                _PITFALL_FUNCTIONAL,
                _NOTE_PIXELS,
            ),
            compare_with="gradient_shap",
            paper="Lundberg & Lee 2017, A Unified Approach to Interpreting Model Predictions (NeurIPS)",
        ),
    )
)


# --- GradientSHAP (expected gradients) -----------------------------------------------------------
GRADIENT_SHAP_SET = 8  # size of the reference set the samples draw from (one image for 'black')


def gradient_shap_draws(
    generator: torch.Generator, count: int, n_refs: int, shape: tuple[int, ...], noise: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """For `count` samples, one after another: a reference index, alpha in [0, 1] and standard-normal
    noise (None when there is none). Drawn per sample, so the draws never depend on the batch size."""
    indices, alphas, eps = [], [], []
    for _ in range(count):
        indices.append(int(torch.randint(n_refs, (1,), generator=generator)))
        alphas.append(float(torch.rand(1, generator=generator)))
        if noise:
            eps.append(torch.randn(shape, generator=generator))
    return torch.tensor(indices), torch.tensor(alphas), torch.stack(eps) if noise else None


def _gradient_shap(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    p = ctx.params
    x = ctx.x
    refs = reference_set(ctx, p["distribution"], GRADIENT_SHAP_SET, int(p["seed"]))
    sigma = float(p["noise"]) * float(x.max() - x.min())
    draws = BatchDraws(int(p["seed"]))
    n = int(p["samples"])
    total = torch.zeros_like(x[0])

    def body(start: int, stop: int) -> None:
        nonlocal total
        index, alpha, eps = gradient_shap_draws(
            draws.at(start), stop - start, len(refs), x.shape[1:], sigma > 0
        )
        noisy = x if eps is None else x + eps.to(x.device, x.dtype) * sigma
        base = refs[index.to(x.device)]
        a = alpha.to(x.device, x.dtype).view(-1, 1, 1, 1)
        # captum's InputBaselineXGradient: the gradient at b + alpha (x~ - b), times (x~ - b).
        grads = ctx.gradients(a * noisy + (1 - a) * base)
        total = total + (grads * (noisy - base)).sum(0)

    ctx.for_batches(n, body, "GradientSHAP samples")
    raw = total / n
    return raw, channel_sum(raw)


register(
    MethodSpec(
        id="gradient_shap",
        sign="absolute",
        display="smoothed",
        family="gradient",
        title="GradientSHAP (expected gradients)",
        description="The gradient at random points between the input and references drawn from a "
        "distribution, times the difference: an estimate of SHAP values, as captum's GradientShap.",
        compute=_gradient_shap,
        params=(
            Param(
                "samples",
                "int",
                25,
                "Random (reference, point on the path) samples averaged.",
                min=1,
                max=1000,
                step=1,
            ),
            Param("distribution", "choice", "blur", DISTRIBUTION_HELP, choices=DISTRIBUTIONS),
            Param(
                "noise",
                "float",
                0.0,
                "Gaussian noise added to the input for each sample, as a fraction of the input's value "
                "range (SmoothGrad's noise; 0 for none).",
                min=0.0,
                max=1.0,
                step=0.01,
            ),
            SEED,
            BATCH_SIZE,
        ),
        cost=lambda p, info: Passes(int(p["samples"]), int(p["samples"]), batched=int(p["samples"])),
        reference="Lundberg & Lee 2017 (GradientExplainer); Erion et al. 2021, expected gradients",
        lesson=Lesson(
            computes="Integrated Gradients with the integral and the baseline both sampled: each sample takes a "
            "reference x' from a distribution and a random point α on the straight path to the input, and "
            "multiplies the gradient there by (x − x'). The average estimates expected gradients, whose "
            "attributions add up, in expectation, to the score minus the references' mean score.",
            formula=r"\phi_i = \mathbb{E}_{x' \sim D,\ \alpha \sim U[0,1],\ \varepsilon \sim \mathcal{N}(0, "
            r"\sigma^2)} \left[ (\tilde x_i - x'_i) \frac{\partial S_t\big(x' + \alpha (\tilde x - x')\big)}"
            r"{\partial x_i} \right], \quad \tilde x = x + \varepsilon",
            cost="One forward and one backward pass per sample (25 by default).",
            params={
                "samples": "More samples: less Monte-Carlo noise, linearly more passes.",
                "distribution": "The references (8 drawn from the distribution) define what 'absence' means.",
                "noise": "Smooths the map like SmoothGrad, at the price of explaining noisy copies.",
            },
            pitfalls=(
                "A Monte-Carlo estimate: with few samples the map depends on the seed.",
                "Completeness holds only in expectation, not for one map.",
                "It inherits the baseline question of Integrated Gradients, averaged over a distribution.",
                _NOTE_PIXELS,
            ),
            compare_with="integrated_gradients",
            paper="Lundberg & Lee 2017, A Unified Approach to Interpreting Model Predictions; Erion et al. "
            "2021, Improving performance of deep learning models with axiomatic attribution priors and "
            "expected gradients",
        ),
    )
)
