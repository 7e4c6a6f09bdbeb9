"""Perturbation family: occlusion and RISE. Model-agnostic: they only need forward passes."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ..errors import InvalidParameter
from ..targets import ClassTarget
from .base import BATCH_SIZE, SEED, CostInfo, MethodSpec, Param, Passes, register
from .common import BatchDraws
from .lesson import Lesson
from .occlusion import adaptive_windows, incremental_scorer, occlusion_baseline, occlusion_map, plain_scorer
from .occlusion_grid import window_starts

__all__ = ["occlusion_baseline", "rise_masks", "window_starts"]

if TYPE_CHECKING:
    from .context import MethodContext


def _occlusion(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    scorer = incremental_scorer if ctx.params["incremental"] else plain_scorer
    raw = occlusion_map(ctx, lambda baseline, patch: scorer(ctx, baseline, patch))
    return raw, raw.clone()


def _occlusion_cost(p: Mapping[str, Any], info: CostInfo) -> tuple[int, int]:
    h, w = info.size
    patch, stride = int(p["patch"]), int(p["stride"])
    ny, nx = len(window_starts(h, patch, stride)), len(window_starts(w, patch, stride))
    windows = adaptive_windows(ny, nx, float(p["budget"])) if p["mode"] == "adaptive" else ny * nx
    # The unoccluded reference, and incremental occlusion's plan: the unoccluded activations and a check
    # window (made once per model and image, so later runs need fewer than this).
    return Passes(windows + 1 + 2 * bool(p["incremental"]), 0, batched=windows)


def _occlusion_size_defaults(side: int, heavy: bool) -> dict[str, Any]:
    # About 5 patches across the longer side, half-overlapping: some 60 passes on a 640-px detector input
    # instead of 1,200 with the 224-px defaults.
    patch = max(8, round(side / 5 / 8) * 8)
    return {"patch": patch, "stride": max(1, patch // 2)}


register(
    MethodSpec(
        id="occlusion",
        localises=True,
        size_defaults=_occlusion_size_defaults,
        family="perturbation",
        title="Occlusion",
        description="Slides a patch over the image and records how much the target score drops when each "
        "region is hidden; per pixel, the mean drop over the windows covering it. Detection scores each "
        "occluded image D-RISE-style: the best IoU x class score of a detection matching the chosen box.",
        compute=_occlusion,
        params=(
            Param("patch", "int", 32, "Side of the square patch, in pixels.", min=1, max=512, step=1),
            Param(
                "stride",
                "int",
                16,
                "Step between patch positions, in pixels (smaller: smoother, slower).",
                min=1,
                max=512,
                step=1,
            ),
            Param(
                "baseline",
                "choice",
                "zero",
                "What hides a region: the all-zero input, the image's mean colour, or a blurred copy.",
                choices=("zero", "mean", "blur"),
            ),
            Param(
                "mode",
                "choice",
                "exact",
                "exact: every window, coarse ones first, so a rough map shows early and sharpens in place; "
                "adaptive (approximate): a coarse grid of windows, then only where it changes, the rest "
                "interpolated.",
                choices=("exact", "adaptive"),
            ),
            Param(
                "incremental",
                "bool",
                True,
                "Recompute per window only what the patch can reach, from the unoccluded image's "
                "activations (Krypton): the same map, faster on CNNs; other models run full passes.",
            ),
            Param(
                "budget",
                "float",
                0.1,
                "Adaptive mode: the share of the windows computed (half on the coarse grid).",
                min=0.02,
                max=1.0,
                step=0.01,
            ),
            BATCH_SIZE,
        ),
        cost=_occlusion_cost,
        reference="Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks",
        lesson=Lesson(
            computes="A patch slides over the image; each pixel gets the mean drop of the target score over the "
            "patches that covered it.",
            formula=r"M_p = \frac{1}{|W_p|} \sum_{w \in W_p} \Big( S_t(x) - S_t\big(x_{w \leftarrow b}\big) \Big)",
            cost="One forward pass per patch position: (H / stride) × (W / stride), e.g. 169 at 224 px with "
            "stride 16.",
            params={
                "patch": "Smaller than the object's parts: fine maps; larger than the object: one blob.",
                "stride": "A stride larger than the patch leaves pixels that no patch covers (zero in the map).",
                "baseline": "What replaces the patch; each creates unnatural images in its own way.",
            },
            pitfalls=(
                "Occluded images are out of distribution: the model may react to the patch itself.",
                "Redundant evidence hides: if two parts each suffice, occluding one changes nothing.",
            ),
            paper="Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks",
        ),
    )
)


# --- RISE ---------------------------------------------------------------------------------------
def rise_masks(
    count: int, size: tuple[int, int], cell: int, p: float, generator: torch.Generator
) -> torch.Tensor:
    """Smooth random masks [count, H, W]: a coarse Bernoulli(p) grid, bilinearly upsampled, randomly shifted."""
    h, w = size
    gh, gw = math.ceil(h / cell) + 1, math.ceil(w / cell) + 1
    masks = []
    for _ in range(count):  # one draw per mask keeps masks independent of the batch size
        grid = (torch.rand(gh, gw, generator=generator) < p).float()
        dy, dx = (int(v) for v in torch.randint(0, cell, (2,), generator=generator))
        up = F.interpolate(
            grid[None, None], size=(gh * cell, gw * cell), mode="bilinear", align_corners=False
        )
        masks.append(up[0, 0, dy : dy + h, dx : dx + w])
    return torch.stack(masks)


def _rise(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    prm = ctx.params
    x = ctx.x
    _, _, h, w = x.shape
    n, cell, p = int(prm["masks"]), int(prm["cell"]), float(prm["p"])
    if cell > max(h, w):
        raise InvalidParameter(f"The RISE cell ({cell} px) is larger than the image ({w}x{h}).")
    draws = BatchDraws(int(prm["seed"]))
    black = ctx.model.black(x)
    target = ctx.target
    score_fn = None
    if (
        prm["score"] == "probability"
        and isinstance(target, ClassTarget)
        and ctx.model.task == "classification"
    ):

        def score_fn(out: torch.Tensor) -> torch.Tensor:
            return torch.softmax(out.float(), dim=1)[:, target.index]

    total = torch.zeros(h, w, device=x.device)
    score_sum = torch.zeros((), device=x.device)
    # Progressive: the running map after 10% of the masks, then refined in place (the final map is the same).
    marks = [m for m in (round(n * f) for f in PREVIEW_AT) if 0 < m < n]

    def body(start: int, stop: int) -> None:
        nonlocal score_sum
        masks = rise_masks(stop - start, (h, w), cell, p, draws.at(start)).to(x.device, x.dtype)
        m = masks[:, None]
        scores = ctx.scores(x * m + black * (1 - m), score_fn).to(x.device)
        total.add_((scores[:, None, None] * masks).sum(0))
        score_sum = score_sum + scores.sum()
        if marks and stop >= marks[0] and ctx.wants_preview:
            while marks and stop >= marks[0]:
                marks.pop(0)
            ctx.preview(total / (stop * p) - score_sum / stop, f"{stop} of {n} masks, refining")

    ctx.for_batches(n, body, "RISE masks")
    ctx.extras["mode"] = "progressive"
    raw = total / (n * p)
    # raw is the paper's E[S · m(u)] / p: about the mean masked score everywhere, plus the pixel's effect.
    # The paper's figures stretch it min-max; the map subtracts that mean score instead, so it is signed
    # (above zero: showing the pixel raises the score) and a display drawing from 0 shows the contrast.
    return raw, raw - score_sum / n


PREVIEW_AT = (0.1, 0.25, 0.5, 0.75)  # shares of the masks after which a watcher sees the running map
DETECTOR_RISE_MASKS = 200  # each pass runs a whole detector
DENSE_RISE_MASKS = 300


def _rise_size_defaults(side: int, heavy: bool) -> dict[str, Any]:
    # Fewer, proportionally larger cells (8 across) and fewer masks than for a 224-px classifier.
    return {"masks": DETECTOR_RISE_MASKS if heavy else DENSE_RISE_MASKS, "cell": max(8, math.ceil(side / 8))}


register(
    MethodSpec(
        id="rise",
        localises=True,
        size_defaults=_rise_size_defaults,
        family="perturbation",
        title="RISE",
        description="Randomised input sampling: the score-weighted average of many random smooth masks. "
        "Black-box: it works for any model.",
        compute=_rise,
        params=(
            Param(
                "masks",
                "int",
                500,
                "Number of random masks (the paper uses thousands).",
                min=1,
                max=20000,
                step=1,
            ),
            Param(
                "cell",
                "int",
                28,
                "Size of one cell of the random grid, in pixels: larger cells, coarser map.",
                min=2,
                max=512,
                step=1,
            ),
            Param(
                "p", "float", 0.5, "Probability that a cell is kept visible.", min=0.01, max=0.99, step=0.01
            ),
            Param(
                "score",
                "choice",
                "probability",
                "Classification: score masked images by the class probability (as in the paper) or by "
                "the raw logit. Other tasks always use their perturbation score (detection: D-RISE's "
                "IoU x class score with the chosen box; segmentation: mean probability over the region).",
                choices=("probability", "raw"),
            ),
            SEED,
            BATCH_SIZE,
        ),
        cost=lambda p, info: Passes(int(p["masks"]), 0, batched=int(p["masks"])),
        reference="Petsiuk et al. 2018, RISE",
        lesson=Lesson(
            computes="Many random smooth masks; each pixel gets the average target score of the masked images "
            "it was visible in (the paper's map, kept as the raw output), minus the mean score of all masked "
            "images. Every pixel's raw value is close to that mean, so the paper's figures stretch the map "
            "min-max; subtracting it keeps the map's units (score) and shows where showing a pixel raises the "
            "score (above zero) or lowers it (below).",
            formula=r"M = \frac{1}{N\, \mathbb{E}[m]} \sum_{k=1}^{N} S_t\!\left(x \odot m_k\right) m_k "
            r"\;-\; \frac{1}{N} \sum_{k=1}^{N} S_t\!\left(x \odot m_k\right)",
            cost="One forward pass per mask (500 by default; the paper uses thousands).",
            params={
                "masks": "More masks: less noise, linearly more passes.",
                "cell": "The random grid's cell size: larger cells, coarser maps.",
                "p": "Share of cells kept visible in each mask.",
            },
            pitfalls=("Noisy with few masks; compare seeds before trusting fine detail.",),
            paper="Petsiuk, Das & Saenko 2018, RISE",
        ),
    )
)
