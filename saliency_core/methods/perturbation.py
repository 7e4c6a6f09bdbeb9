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
from .common import BatchDraws, default_blur_sigma, gaussian_blur
from .lesson import Lesson

if TYPE_CHECKING:
    from .context import MethodContext


def window_starts(size: int, patch: int, stride: int) -> list[int]:
    """Window offsets along one axis; the last window may hang over the edge (as captum slides)."""
    count = math.ceil(max(size - patch, 0) / stride) + 1
    return [i * stride for i in range(count)]


def occlusion_baseline(x: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "zero":
        return torch.zeros_like(x)
    if kind == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
    return gaussian_blur(x, default_blur_sigma(x))


def _occlusion(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    p = ctx.params
    x = ctx.x
    _, _, h, w = x.shape
    patch, stride = int(p["patch"]), int(p["stride"])
    if patch > min(h, w):
        raise InvalidParameter(f"The occlusion patch ({patch} px) is larger than the image ({w}x{h}).")
    baseline = occlusion_baseline(x, p["baseline"])
    windows = [(y, xx) for y in window_starts(h, patch, stride) for xx in window_starts(w, patch, stride)]
    reference = ctx.model.adapter.perturbation_score(ctx.target, ctx.output())[0].float()
    total = torch.zeros(h, w, device=x.device)
    count = torch.zeros(h, w, device=x.device)

    def body(start: int, stop: int) -> None:
        batch = x.repeat(stop - start, 1, 1, 1)
        for j, (y, xx) in enumerate(windows[start:stop]):
            batch[j, :, y : y + patch, xx : xx + patch] = baseline[0, :, y : y + patch, xx : xx + patch]
        drops = reference - ctx.scores(batch).to(x.device)
        for j, (y, xx) in enumerate(windows[start:stop]):
            total[y : y + patch, xx : xx + patch] += drops[j]
            count[y : y + patch, xx : xx + patch] += 1

    ctx.for_batches(len(windows), body, "Occlusion windows")
    raw = total / count.clamp(min=1)
    return raw, raw.clone()


def _occlusion_cost(p: Mapping[str, Any], info: CostInfo) -> tuple[int, int]:
    h, w = info.size
    patch, stride = int(p["patch"]), int(p["stride"])
    windows = len(window_starts(h, patch, stride)) * len(window_starts(w, patch, stride))
    return Passes(windows + 1, 0, batched=windows)  # and the unoccluded reference


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

    def body(start: int, stop: int) -> None:
        nonlocal score_sum
        masks = rise_masks(stop - start, (h, w), cell, p, draws.at(start)).to(x.device, x.dtype)
        m = masks[:, None]
        scores = ctx.scores(x * m + black * (1 - m), score_fn).to(x.device)
        total.add_((scores[:, None, None] * masks).sum(0))
        score_sum = score_sum + scores.sum()

    ctx.for_batches(n, body, "RISE masks")
    raw = total / (n * p)
    # raw is the paper's E[S · m(u)] / p: about the mean masked score everywhere, plus the pixel's effect.
    # The paper's figures stretch it min-max; the map subtracts that mean score instead, so it is signed
    # (above zero: showing the pixel raises the score) and a display drawing from 0 shows the contrast.
    return raw, raw - score_sum / n


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
