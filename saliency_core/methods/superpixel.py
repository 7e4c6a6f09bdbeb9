"""Region family: LIME, Kernel SHAP and feature ablation over superpixels. Model-agnostic: forward passes
only, scored by the task's perturbation score, so they explain classifiers, detectors, segmenters and pose
models alike. The segments come from `segments.py`; a segment that is "off" shows the baseline."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from .base import BATCH_SIZE, SEED, CostInfo, MethodSpec, Param, Passes, register
from .lesson import Lesson
from .perturbation import occlusion_baseline
from .segments import ALGORITHMS, segment

if TYPE_CHECKING:
    from .context import MethodContext

MAX_SEGMENTS = 256
MAX_SAMPLES = 4096
INF_WEIGHT = 1e6  # Kernel SHAP's weight of the all-on and all-off samples (captum's "infinite" weight)
DETECTOR_SAMPLES = 128  # each pass runs a whole detector

SEGMENTATION = Param(
    "segmentation",
    "choice",
    "slic",
    "How the picture is cut into superpixels: SLIC (compact, colour-coherent), quickshift, Felzenszwalb's "
    "graph-based segmentation, or a plain grid of near-square cells.",
    choices=ALGORITHMS,
)
SEGMENTS = Param(
    "segments",
    "int",
    50,
    "Number of superpixels (exact: the segmentation's smallest are merged or its largest halved to reach it).",
    min=2,
    max=MAX_SEGMENTS,
    step=1,
)
SAMPLES = Param(
    "samples",
    "int",
    256,
    "Random on/off patterns of the segments, one forward pass each: more, less variance.",
    min=16,
    max=MAX_SAMPLES,
    step=1,
)
BASELINE = Param(
    "baseline",
    "choice",
    "zero",
    "What an 'off' segment shows (as occlusion's): the all-zero input, the image's mean colour, or a "
    "blurred copy.",
    choices=("zero", "mean", "blur"),
)
KERNEL_WIDTH = Param(
    "kernel_width",
    "float",
    0.25,
    "Width of LIME's exponential kernel on the cosine distance to the whole image (LIME's image default).",
    min=0.01,
    max=10.0,
    step=0.01,
)
ALPHA = Param(
    "alpha",
    "float",
    1.0,
    "Ridge penalty of LIME's linear surrogate (LIME's default 1); 0: weighted least squares.",
    min=0.0,
    max=1000.0,
    step=0.1,
)


# --- shared machinery -------------------------------------------------------------------------
def image_segments(ctx: MethodContext) -> torch.Tensor:
    """Superpixel labels [H, W] (long, on the input's device) of the displayed picture, kept in extras."""
    p = ctx.params
    labels = segment(ctx.model.to_image(ctx.x), p["segmentation"], int(p["segments"]))
    found = torch.from_numpy(labels)
    ctx.extras["segments"] = int(found.max()) + 1
    ctx.extras["segment_labels"] = found.to(torch.int32)
    return found.to(ctx.x.device)


def compose(x: torch.Tensor, baseline: torch.Tensor, labels: torch.Tensor, on: torch.Tensor) -> torch.Tensor:
    """Images [B, C, H, W]: x where the sample's segment is on, the baseline where it is off (on: [B, n])."""
    keep = on.to(labels.device).bool()[:, labels][:, None]  # [B, 1, H, W]
    return torch.where(keep, x, baseline)


def sample_scores(ctx: MethodContext, on: torch.Tensor, labels: torch.Tensor, message: str) -> torch.Tensor:
    """The perturbation score of each on/off sample [N] (float64, CPU), batched by the engine."""
    x = ctx.x
    baseline = occlusion_baseline(x, ctx.params["baseline"])
    out = torch.empty(len(on), dtype=torch.float64)

    def body(start: int, stop: int) -> None:
        scores = ctx.scores(compose(x, baseline, labels, on[start:stop]))
        out[start:stop] = scores.detach().double().cpu()

    ctx.for_batches(len(on), body, message)
    return out


def weighted_linear_fit(
    z: torch.Tensor, y: torch.Tensor, w: torch.Tensor, alpha: float = 0.0
) -> tuple[torch.Tensor, float, float]:
    """Weighted ridge regression with an unpenalised intercept, in float64 (sklearn's Ridge with
    sample_weight; alpha=0: LinearRegression, the minimum-norm solution when the design is degenerate).
    Returns (coefficients [n], intercept, weighted R^2)."""
    z, y, w = z.double(), y.double(), w.double()
    total = w.sum()
    z_mean = (w[:, None] * z).sum(0) / total
    y_mean = (w * y).sum() / total
    root = w.sqrt()
    design = root[:, None] * (z - z_mean)
    response = root * (y - y_mean)
    if alpha > 0:  # ridge as least squares on rows sqrt(alpha) * I appended
        n = z.shape[1]
        design = torch.cat([design, torch.eye(n, dtype=design.dtype) * alpha**0.5])
        response = torch.cat([response, torch.zeros(n, dtype=response.dtype)])
    coef = torch.linalg.pinv(design) @ response
    intercept = float(y_mean - z_mean @ coef)
    return coef, intercept, weighted_r2(z, y, w, coef, intercept)


def weighted_r2(
    z: torch.Tensor, y: torch.Tensor, w: torch.Tensor, coef: torch.Tensor, intercept: float
) -> float:
    """1 - weighted residual / weighted spread of the scores (1 when the scores do not vary)."""
    z, y, w = z.double(), y.double(), w.double()
    y_mean = (w * y).sum() / w.sum()
    spread = float((w * (y - y_mean) ** 2).sum())
    residual = float((w * (y - z @ coef.double() - intercept) ** 2).sum())
    return 1.0 - residual / spread if spread > 0 else 1.0


def lime_samples(count: int, n: int, seed: int) -> torch.Tensor:
    """[count, n] on/off patterns: the whole image first (as LIME's image explainer), then fair coin flips."""
    g = torch.Generator().manual_seed(seed)
    on = torch.randint(0, 2, (count, n), generator=g, dtype=torch.long)
    on[0] = 1
    return on


def lime_weights(on: torch.Tensor, width: float) -> torch.Tensor:
    """exp(-d^2 / (2 width^2)) (LIME's sqrt(exp(-d^2 / width^2)), captum's exponential kernel), d the cosine
    distance of each pattern to the all-on one; an all-off pattern is at distance 1."""
    on = on.double()
    cos = on.sum(1) / (on.norm(dim=1).clamp(min=1e-12) * on.shape[1] ** 0.5)
    return torch.exp(-((1.0 - cos) ** 2) / (2.0 * width**2))


def shap_samples(count: int, n: int, seed: int) -> torch.Tensor:
    """[count, n] patterns as captum's KernelShap draws them: all on, all off, then a subset size k with
    probability proportional to (n - 1) / (k (n - k)) and a uniform subset of that size."""
    g = torch.Generator().manual_seed(seed)
    on = torch.zeros(count, n, dtype=torch.long)
    on[0] = 1
    if count > 2 and n > 1:
        k = torch.arange(1, n, dtype=torch.float64)
        sizes = torch.multinomial((n - 1) / (k * (n - k)), count - 2, replacement=True, generator=g) + 1
        ranks = torch.rand(count - 2, n, generator=g, dtype=torch.float64).argsort(1).argsort(1)
        on[2:] = (ranks < sizes[:, None]).long()
    return on


def shap_weights(on: torch.Tensor) -> torch.Tensor:
    """1 per sampled pattern (the sampling follows the Shapley kernel), INF_WEIGHT for all on / all off."""
    full = on.sum(1)
    ends = (full == 0) | (full == on.shape[1])
    return torch.where(
        ends, torch.tensor(INF_WEIGHT, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    )


def _surrogate(ctx: MethodContext, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    p = ctx.params
    labels = image_segments(ctx)
    n = ctx.extras["segments"]
    count, seed = int(p["samples"]), int(p["seed"])
    if kind == "lime":
        on = lime_samples(count, n, seed)
        weights, alpha = lime_weights(on, float(p["kernel_width"])), float(p["alpha"])
    else:
        on = shap_samples(count, n, seed)
        weights, alpha = shap_weights(on), 0.0
    y = sample_scores(ctx, on, labels, "LIME samples" if kind == "lime" else "Kernel SHAP samples")
    coef, intercept, r2 = weighted_linear_fit(on, y, weights, alpha)
    if kind == "kernel_shap" and count > 2:
        # The end points' 10^6 weights make the weighted R^2 about 1 whatever the fit: judge the sampled rest.
        r2 = weighted_r2(on[2:], y[2:], torch.ones(count - 2, dtype=torch.float64), coef, intercept)
    ctx.extras.update(surrogate_r2=r2, intercept=intercept)
    raw = coef.float().to(ctx.x.device)
    return raw, raw[labels]


def _feature_ablation(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    labels = image_segments(ctx)
    n = ctx.extras["segments"]
    on = torch.ones(n + 1, n, dtype=torch.long)
    on[1:] -= torch.eye(n, dtype=torch.long)  # sample 0: the image itself; sample i + 1: segment i off
    y = sample_scores(ctx, on, labels, "Ablated segments")
    raw = (y[0] - y[1:]).float().to(ctx.x.device)
    return raw, raw[labels]


def _segment_count(p: Mapping[str, Any], info: CostInfo) -> int:
    h, w = info.size
    return max(1, min(int(p["segments"]), h * w))


def _sampled_cost(p: Mapping[str, Any], info: CostInfo) -> tuple[int, int]:
    return Passes(int(p["samples"]), 0, batched=int(p["samples"]))


def _ablation_cost(p: Mapping[str, Any], info: CostInfo) -> tuple[int, int]:
    passes = _segment_count(p, info) + 1  # and the image itself
    return Passes(passes, 0, batched=passes)


def _sampled_size_defaults(side: int, heavy: bool) -> dict[str, Any]:
    return {"samples": DETECTOR_SAMPLES} if heavy else {}


_SEGMENT_PITFALL = (
    "The map is only as good as the segmentation: a segment that straddles the object and the background "
    "gives both the same value, and a different segmentation (or segment count) gives a different answer."
)
_BASELINE_PITFALL = (
    "Switched-off segments show the baseline (black, grey, blurred): such images are out of distribution, "
    "and the model may react to the patchwork itself rather than to the missing evidence."
)
_MAXIMUM_PITFALL = (
    "The maximum is a whole segment, so it need not lie on the object: a segment straddling the object's "
    "edge carries the peak off it, and which one wins changes with the segmentation (on the demo scenes the "
    "default maps of all three methods peak off the object on one scene or another as SLIC's settings vary)."
)
_SEGMENT_PARAMS = {
    "segmentation": "SLIC follows colour edges with compact segments; Felzenszwalb follows edges with "
    "irregular shapes; quickshift is mode-seeking in colour and position; a grid ignores the picture.",
    "segments": "Fewer, larger segments: fewer unknowns and a steadier fit, but coarser maps. More: finer "
    "maps, but each segment moves the score less and (LIME, Kernel SHAP) needs more samples.",
    "baseline": "What replaces a switched-off segment; the attributions are differences from it.",
}

register(
    MethodSpec(
        id="lime",
        family="region",
        title="LIME",
        description="Local Interpretable Model-agnostic Explanations: random on/off patterns of superpixels, "
        "a linear surrogate fitted to the scores, weighted by closeness to the whole image; each segment "
        "gets its coefficient.",
        compute=lambda ctx: _surrogate(ctx, "lime"),
        params=(SEGMENTATION, SEGMENTS, SAMPLES, KERNEL_WIDTH, ALPHA, BASELINE, SEED, BATCH_SIZE),
        cost=_sampled_cost,
        size_defaults=_sampled_size_defaults,
        reference='Ribeiro, Singh & Guestrin 2016, "Why Should I Trust You?"',
        lesson=Lesson(
            computes="The image is cut into superpixels. Each sample switches every segment on or off at "
            "random (the first sample is the whole image), and the model scores the patched image. A linear "
            "model of the on/off vector is fitted to those scores by weighted ridge regression, each sample "
            "weighted by its closeness to the whole image; a segment's coefficient is how much showing it "
            "adds to the score. extras['surrogate_r2'] is the fit's weighted R^2.",
            formula=r"\hat\beta = \arg\min_{\beta, \beta_0} \sum_{k} \pi(z_k) \big(S_t(x_{z_k}) - \beta_0 - "
            r"\beta^\top z_k\big)^2 + \alpha \lVert \beta \rVert^2, \quad "
            r"\pi(z) = \exp\!\Big(-\frac{d_{\cos}(z, \mathbf 1)^2}{2 \sigma^2}\Big), \quad M_p = \hat\beta_{s(p)}",
            cost="One forward pass per sample (256 by default), then a small least-squares fit.",
            params={
                **_SEGMENT_PARAMS,
                "samples": "More samples: lower variance of the coefficients; with fewer samples than "
                "segments the fit is underdetermined and the ridge penalty decides.",
                "kernel_width": "Small: only samples close to the whole image count (a very local "
                "explanation, fitted on few effective samples); large: every sample counts alike.",
                "alpha": "Shrinks the coefficients toward zero; matters most with few samples.",
            },
            pitfalls=(
                _SEGMENT_PITFALL,
                _BASELINE_PITFALL,
                "A linear surrogate of a non-linear model: check the fit (surrogate_r2 in extras); a low R^2 "
                "means the coefficients explain little of how the score changes.",
                "Random: another seed gives another map; compare seeds before trusting small differences.",
                _MAXIMUM_PITFALL,
            ),
            compare_with="kernel_shap",
            paper='Ribeiro, Singh & Guestrin 2016, "Why Should I Trust You?": Explaining the Predictions '
            "of Any Classifier",
        ),
    )
)

register(
    MethodSpec(
        id="kernel_shap",
        family="region",
        title="Kernel SHAP",
        description="Shapley values of the superpixels, estimated LIME-style: on/off patterns drawn by the "
        "Shapley kernel and a weighted linear regression; the values add up to the score's change from the "
        "all-off image.",
        compute=lambda ctx: _surrogate(ctx, "kernel_shap"),
        params=(SEGMENTATION, SEGMENTS, SAMPLES, BASELINE, SEED, BATCH_SIZE),
        cost=_sampled_cost,
        size_defaults=_sampled_size_defaults,
        reference="Lundberg & Lee 2017, A Unified Approach to Interpreting Model Predictions",
        lesson=Lesson(
            computes="Segments are switched off (to the baseline) in random coalitions: first all on and all "
            "off, then a coalition size k drawn with probability proportional to the Shapley kernel's "
            "(n - 1) / (k (n - k)) and a uniform coalition of that size (captum's KernelShap sampling). An "
            "unregularised linear regression of the scores, the two end points weighted 10^6 so that the "
            "values add up to S(x) - S(baseline), estimates each segment's Shapley value.",
            formula=r"\phi = \arg\min_{\phi, \phi_0} \sum_k w_k \big(S_t(x_{z_k}) - \phi_0 - \phi^\top z_k\big)^2, "
            r"\quad z_k \sim \pi(z) \propto \frac{n-1}{\binom{n}{|z|} |z| (n - |z|)}, \quad "
            r"\sum_i \phi_i \approx S_t(x) - S_t(b)",
            cost="One forward pass per sample (256 by default), then a small least-squares fit.",
            params={
                **_SEGMENT_PARAMS,
                "samples": "The estimate converges to the exact Shapley values as samples grow; with fewer "
                "samples than segments the regression is underdetermined (minimum-norm solution).",
            },
            pitfalls=(
                _SEGMENT_PITFALL,
                _BASELINE_PITFALL,
                "Shapley values assume the switched-off segments are 'absent'; with a baseline they are "
                "replaced, so the values depend on the baseline chosen.",
                "A Monte-Carlo estimate: with few samples per segment it is noisy; compare seeds.",
                _MAXIMUM_PITFALL,
            ),
            compare_with="lime",
            paper="Lundberg & Lee 2017, A Unified Approach to Interpreting Model Predictions",
        ),
    )
)

register(
    MethodSpec(
        id="feature_ablation",
        family="region",
        title="Feature ablation (superpixels)",
        description="Switches off one superpixel at a time (to the baseline) and records how much the "
        "target score drops; each segment gets its drop.",
        compute=_feature_ablation,
        params=(SEGMENTATION, SEGMENTS, BASELINE, BATCH_SIZE),
        cost=_ablation_cost,
        reference="captum FeatureAblation; cf. Zeiler & Fergus 2014 (occlusion)",
        lesson=Lesson(
            computes="The image is cut into superpixels; each segment in turn is replaced by the baseline and "
            "the score of the image without it is subtracted from the score of the whole image. Occlusion "
            "with segment-shaped patches that follow the picture's edges, each scored once.",
            formula=r"M_p = S_t(x) - S_t\big(x_{s(p) \leftarrow b}\big)",
            cost="One forward pass per segment, plus the image itself (51 by default).",
            params=_SEGMENT_PARAMS,
            pitfalls=(
                _SEGMENT_PITFALL,
                _BASELINE_PITFALL,
                "One segment at a time: if two segments each suffice, removing either changes nothing and "
                "both get zero (Kernel SHAP shares such redundant evidence).",
                _MAXIMUM_PITFALL,
            ),
            compare_with="occlusion",
            paper="Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks (occlusion); "
            "Kokhlikyan et al. 2020, Captum",
        ),
    )
)
