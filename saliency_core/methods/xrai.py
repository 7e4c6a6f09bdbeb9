"""XRAI (Kapishnikov et al. 2019): Integrated Gradients summed over image regions, regions added greedily.

Follows PAIR's implementation (`saliency.core.XRAI`, the test oracle) step by step: IG from each baseline,
averaged, the channels' maximum; Felzenszwalb segments of the picture at six scales (computed at 224 px,
as PAIR does, then dilated); the region of highest attribution density over the pixels it adds, until the
image is covered. The map gives each pixel the density of the region that added it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .base import BATCH_SIZE, CostInfo, MethodSpec, Param, Passes, register
from .common import default_blur_sigma, gaussian_blur
from .gradients import IG_RULES, ig_alphas
from .lesson import Lesson

if TYPE_CHECKING:
    from .context import MethodContext

# PAIR's segmentation constants (saliency/core/xrai.py): six Felzenszwalb scales on the picture resized to
# 224 px with values in [-1, 1], so the scales mean the same at every input size.
SCALES = (50, 100, 150, 250, 500, 1200)
SIGMA = 0.8
MIN_SEGMENT = 150
SEGMENT_SIDE = 224
MIN_PIXEL_DIFF = 50  # a region adding fewer new pixels than this is dropped (PAIR's experimental param)
BASELINES = ("black_white", "black", "zero", "blur")
PAIR_RULE = "pair_riemann"  # PAIR's IG: `steps` points from baseline to input, both ends, each 1/steps
RULES = (*IG_RULES, PAIR_RULE)
Step = Callable[[float], None]  # called with the covered fraction after each region (progress, cancel)


@dataclass(frozen=True)
class Region:
    """One dilated segment, kept as its bounding window of the image and its mask inside that window."""

    rows: slice
    cols: slice
    mask: np.ndarray  # bool [rows, cols]


def regions_from_masks(masks: list[np.ndarray]) -> list[Region]:
    """Full-image boolean masks (PAIR's `segments=`) as Regions, in the same order."""
    out = []
    for mask in masks:
        ys, xs = np.nonzero(mask)
        if len(ys) == 0:
            out.append(Region(slice(0, 0), slice(0, 0), np.zeros((0, 0), bool)))
            continue
        rows, cols = slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)
        out.append(Region(rows, cols, np.asarray(mask[rows, cols], bool)))
    return out


def segment(image: np.ndarray, dilation: int = 5) -> list[Region]:
    """PAIR's Felzenszwalb regions of an HxWx3 picture: every segment of every scale, dilated by a disk
    of `dilation` px. Dilation is done in each segment's window (the same result, a fraction of the work)."""
    from scipy import ndimage
    from skimage.morphology import disk
    from skimage.segmentation import felzenszwalb
    from skimage.transform import resize

    h, w = image.shape[:2]
    im = image.astype(np.float64)
    lo, hi = im.min(), im.max()
    im = (im - lo) / (hi - lo) if hi > lo else np.zeros_like(im)  # PAIR divides by zero on a flat picture
    im = im * 2.0 + -1.0
    im = resize(
        im, (SEGMENT_SIDE, SEGMENT_SIDE), order=3, mode="constant", preserve_range=True, anti_aliasing=True
    )
    footprint = disk(dilation) if dilation else None
    out: list[Region] = []
    for scale in SCALES:
        seg = felzenszwalb(im, scale=scale, sigma=SIGMA, min_size=MIN_SEGMENT)
        seg = resize(seg, (h, w), order=0, preserve_range=True, mode="constant", anti_aliasing=False)
        seg = seg.astype(int)
        first = int(seg.min())
        # One mask per label from the smallest to the largest, as PAIR lists them (labels lost by the
        # resizing give empty masks, dropped at the first step of the selection like any small one).
        windows = ndimage.find_objects(seg - first + 1)
        for label, window in enumerate(windows, start=first):
            if window is None:
                out.append(Region(slice(0, 0), slice(0, 0), np.zeros((0, 0), bool)))
                continue
            rows = slice(max(window[0].start - dilation, 0), min(window[0].stop + dilation, h))
            cols = slice(max(window[1].start - dilation, 0), min(window[1].stop + dilation, w))
            mask = seg[rows, cols] == label
            if footprint is not None:
                mask = ndimage.binary_dilation(mask, structure=footprint)
            out.append(Region(rows, cols, mask))
    return out


def _density(values: np.ndarray, mask: np.ndarray) -> float:
    # PAIR's _gain_density: the mean attribution over the mask (the same elements in the same order as
    # its full-image indexing, so the same float); -inf for an empty mask.
    return values[mask].mean() if mask.any() else -np.inf


def select_full(
    attr: np.ndarray, regions: list[Region], area_threshold: float = 1.0, step: Step | None = None
) -> tuple[np.ndarray, int]:
    """PAIR's `_xrai`: repeatedly add the region whose not yet covered pixels have the highest mean
    attribution; each pixel gets that mean. Returns (map [H, W] float64, regions added). Only regions that
    overlap the pixels just added are re-scored: the others' gains cannot have changed."""
    out = np.full(attr.shape, -np.inf)
    covered = np.zeros(attr.shape, bool)
    count = np.array([int(r.mask.sum()) for r in regions], dtype=np.int64)
    gain = np.array([_density(attr[r.rows, r.cols], r.mask) for r in regions], dtype=np.float64)
    alive = np.ones(len(regions), bool)
    added = 0
    area = 0.0
    while area <= area_threshold:
        alive &= count >= MIN_PIXEL_DIFF
        if not alive.any():
            break
        best = int(np.argmax(np.where(alive, gain, -np.inf)))  # the first of equal gains, as PAIR's loop
        r = regions[best]
        window = covered[r.rows, r.cols]
        new = r.mask & ~window
        out[r.rows, r.cols][new] = gain[best]
        window |= r.mask
        area = float(covered.mean())
        alive[best] = False
        added += 1
        for i in np.flatnonzero(alive):
            q = regions[i]
            if q.rows.start >= r.rows.stop or r.rows.start >= q.rows.stop:
                continue
            if q.cols.start >= r.cols.stop or r.cols.start >= q.cols.stop:
                continue
            left = q.mask & ~covered[q.rows, q.cols]
            n = int(left.sum())
            if n != count[i]:
                count[i] = n
                gain[i] = _density(attr[q.rows, q.cols], left)
        if step is not None:
            step(area)
    _fill_uncovered(out, attr)
    return out, added


def select_fast(attr: np.ndarray, regions: list[Region], step: Step | None = None) -> tuple[np.ndarray, int]:
    """PAIR's `_xrai_fast`: regions ranked once by their own mean attribution (overlaps ignored), then
    added in that order; each pixel gets the mean over the pixels its region added."""
    out = np.full(attr.shape, -np.inf)
    covered = np.zeros(attr.shape, bool)
    gains = [_density(attr[r.rows, r.cols], r.mask) for r in regions]
    added = 0
    for i in sorted(range(len(regions)), key=lambda k: -gains[k]):  # stable, as PAIR's sort
        r = regions[i]
        window = covered[r.rows, r.cols]
        new = r.mask & ~window
        if int(new.sum()) < MIN_PIXEL_DIFF:
            continue
        out[r.rows, r.cols][new] = _density(attr[r.rows, r.cols], new)
        window |= r.mask
        added += 1
        if step is not None:
            step(float(covered.mean()))
    _fill_uncovered(out, attr)
    return out, added


def _fill_uncovered(out: np.ndarray, attr: np.ndarray) -> None:
    # Pixels no region added (below the area threshold, or in no region) get their own mean, as in PAIR.
    left = out == -np.inf
    if left.any():
        out[left] = attr[left].mean()


def select_regions(
    attr: np.ndarray, regions: list[Region], algorithm: str, area_threshold: float, step: Step | None = None
) -> tuple[np.ndarray, int]:
    """The greedy selection of `algorithm` ("full" or "fast") over the channel-reduced IG map [H, W]."""
    if algorithm == "fast":
        return select_fast(attr, regions, step)
    return select_full(attr, regions, area_threshold, step)


def baselines(ctx: MethodContext, kind: str) -> list[torch.Tensor]:
    """The IG baselines of `kind`: the paper's black and white pictures, or one of the others."""
    x = ctx.x
    if kind == "black_white":
        return [ctx.model.black(x), ctx.model.from_pixels(torch.ones_like(x))]
    if kind == "black":
        return [ctx.model.black(x)]
    if kind == "zero":
        return [torch.zeros_like(x)]
    return [gaussian_blur(x, default_blur_sigma(x))]


def path_points(steps: int, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """Points on [0, 1] and weights: PAIR's rule, or one of the engine's IG rules."""
    if rule == PAIR_RULE:
        return np.linspace(0, 1, steps), np.full(steps, 1.0 / steps)
    return ig_alphas(steps, rule)


def integrated_gradients(
    ctx: MethodContext, starts: list[torch.Tensor], steps: int, rule: str
) -> torch.Tensor:
    """IG from each baseline, averaged: [C, H, W]. All baselines' points go through one `for_batches`."""
    x = ctx.x
    alphas, weights = path_points(steps, rule)
    n = len(alphas)
    totals = [torch.zeros_like(x[0]) for _ in starts]

    def body(start: int, stop: int) -> None:
        index = np.arange(start, stop)
        which, k = index // n, index % n
        a = torch.as_tensor(alphas[k], dtype=x.dtype, device=x.device).view(-1, 1, 1, 1)
        w = torch.as_tensor(weights[k], dtype=x.dtype, device=x.device).view(-1, 1, 1, 1)
        base = torch.cat([starts[b] for b in which])
        points = base + a * (x - base)
        grads = ctx.gradients(points) * w
        for b in np.unique(which):
            totals[b] += grads[torch.as_tensor(which == b, device=x.device)].sum(0)

    ctx.for_batches(n * len(starts), body, "XRAI: Integrated Gradients steps")
    return torch.stack([(x[0] - b[0]) * t for b, t in zip(starts, totals)]).mean(0)


def _xrai(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    p = ctx.params
    ig = integrated_gradients(ctx, baselines(ctx, p["baselines"]), int(p["steps"]), p["rule"])
    attr = ig.amax(dim=0).detach().cpu().numpy().astype(np.float32)  # PAIR merges channels by their max
    attr = np.nan_to_num(attr, nan=0.0, posinf=0.0, neginf=0.0)
    regions = segment(ctx.model.to_image(ctx.x), int(p["dilation"]))
    ctx.step(0, 1, "XRAI: adding regions")

    def step(area: float) -> None:
        ctx.step(int(area * 1000), 1000, "XRAI: adding regions")

    ranked, added = select_regions(attr, regions, p["algorithm"], float(p["area_threshold"]), step)
    ctx.extras["regions"] = added
    ctx.extras["segments"] = len(regions)
    ctx.extras["ig_sum"] = float(ig.sum())
    raw = torch.as_tensor(ranked, dtype=torch.float32)
    return raw, raw.clone()


def _cost(p: Mapping[str, Any], info: CostInfo) -> Passes:
    n = int(p["steps"]) * (2 if p["baselines"] == "black_white" else 1)
    return Passes(n, n, batched=n)


register(
    MethodSpec(
        id="xrai",
        family="region",
        title="XRAI",
        description="Integrated Gradients summed over image segments: regions are added greedily, the densest "
        "in attribution first, and each pixel shows the attribution density of the region that added it.",
        compute=_xrai,
        params=(
            # 16 per baseline: the engine's IG default of 32 passes in all; Gauss-Legendre at 16 points is
            # already far more exact than the ranking of regions needs (PAIR: 100 evenly spaced).
            Param("steps", "int", 16, "Integrated Gradients points per baseline.", min=2, max=1024, step=1),
            Param(
                "baselines",
                "choice",
                "black_white",
                "IG baselines, averaged: a black and a white picture (the paper's), a black one, the "
                "all-zero input tensor, or a blurred copy of the image.",
                choices=BASELINES,
            ),
            Param(
                "rule",
                "choice",
                "gausslegendre",
                "Quadrature rule of the IG path integral; pair_riemann is PAIR's (evenly spaced points, "
                "both ends included, each weighted 1/steps).",
                choices=RULES,
            ),
            Param(
                "algorithm",
                "choice",
                "full",
                "full: re-score every region after each addition (the paper's); fast: rank the regions "
                "once, ignoring their overlaps.",
                choices=("full", "fast"),
            ),
            Param(
                "area_threshold",
                "float",
                1.0,
                "Fraction of the image the full algorithm covers with regions; the rest becomes one last "
                "region (ignored by fast).",
                min=0.0,
                max=1.0,
                step=0.05,
            ),
            Param(
                "dilation",
                "int",
                5,
                "Radius in pixels by which each segment is dilated, so regions include their edges.",
                min=0,
                max=20,
                step=1,
            ),
            BATCH_SIZE,
        ),
        cost=_cost,
        reference="Kapishnikov et al. 2019, XRAI: Better Attributions Through Regions",
        sign="positive",
        display="overlay",
        lesson=Lesson(
            computes="Integrated Gradients (from a black and a white baseline, averaged; per pixel the "
            "largest over the colour channels) summed over regions instead of pixels. The picture is "
            "over-segmented by Felzenszwalb's algorithm at six scales; starting from nothing, XRAI "
            "repeatedly adds the region whose new pixels have the highest mean attribution, until the image "
            "is covered. Each pixel gets the gain (mean attribution) of the region that added it, so the "
            "map ranks pixels by when their region was chosen.",
            formula=r"a_p = \max_c \tfrac{1}{|B|}\sum_{b \in B} \mathrm{IG}^{b}_{c,p}, \quad "
            r"r_k = \operatorname*{arg\,max}_{r \in \mathcal{R},\ |r \setminus S_{k-1}| \ge 50} "
            r"\frac{1}{|r \setminus S_{k-1}|} \sum_{p \in r \setminus S_{k-1}} a_p, \quad "
            r"S_k = S_{k-1} \cup r_k, \quad M_p = \text{gain of the } r_k \text{ with } p \in r_k \setminus S_{k-1}",
            cost="One forward and one backward pass per IG step and baseline (2 x 16 by default); the "
            "segmentation and the region selection run on the CPU without the model.",
            params={
                "steps": "IG points per baseline: the map only ranks regions by their mean attribution, so "
                "a rough integral already ranks them as a precise one would; more steps cost linearly more.",
                "rule": "pair_riemann reproduces PAIR's XRAI exactly (with steps=100: its default); "
                "Gauss-Legendre is far more exact for the same passes.",
                "baselines": "Black and white together keep dark and bright objects from getting zero "
                "attribution merely for resembling one baseline.",
                "algorithm": "fast sorts the regions once by their own density: much quicker on large images, "
                "but a region that overlaps better ones is ranked as if it added all of its pixels.",
                "area_threshold": "Below 1 the selection stops once that fraction is covered; the rest is one "
                "region with its mean attribution. For a quick look at the top regions.",
                "dilation": "Larger values make blobbier regions that swallow edges; 0 keeps the segments' "
                "exact borders.",
            },
            pitfalls=(
                "The map is a ranking of regions, not an attribution magnitude: values are region densities, "
                "not additive, and their sum is not the score.",
                "Regions come from the picture's colours, not from the model: a poor segmentation (an object "
                "split across segments, or merged with the background) limits the map whatever the model does.",
                "It inherits Integrated Gradients' baseline choice: a black baseline alone gives dark pixels "
                "no attribution, hence the paper's black and white pair.",
                "Its maximum is a whole region: the first region added is the densest, however small, so read "
                "the top few regions rather than a single pixel.",
            ),
            compare_with="integrated_gradients",
            paper="Kapishnikov, Bolukbasi, Viégas & Terry 2019, XRAI: Better Attributions Through Regions "
            "(ICCV)",
        ),
    )
)
