"""Occlusion's computation: exact (coarse windows first, refined in place while a watcher sees the map
sharpen) or adaptive (a coarse grid, then only the cells where it changes; the rest interpolated).

Each window's score comes from plain batched forward passes, or, for models whose graph it can follow,
from an incremental pass that recomputes only what the patch reaches (methods/incremental.py)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import InvalidParameter
from ..tasks.base import TaskAdapter
from .common import default_blur_sigma, gaussian_blur
from .incremental import IncrementalPlan, plan
from .occlusion_grid import (
    coarse_step,
    coarse_to_fine,
    coverage,
    drill_down,
    drops_to_map,
    interpolate_drops,
    sub_indices,
    window_starts,
)

if TYPE_CHECKING:
    from .context import MethodContext

# Above this share of a full pass's convolution work per window (small images: ResNet-18 at 64 px recomputes
# 81% and ran 1.4x slower than plain passes; at 112 px, 68% and 1.7x faster), plain passes are used.
MAX_WORK_SHARE = 0.75
Scorer = Callable[[Sequence[tuple[int, int]]], torch.Tensor]  # window corners (y, x) -> target scores [B]


def occlusion_baseline(x: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "zero":
        return torch.zeros_like(x)
    if kind == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
    return gaussian_blur(x, default_blur_sigma(x))


def plain_scorer(ctx: MethodContext, baseline: torch.Tensor, patch: int) -> Scorer:
    """Scores of occluded copies of the input, one forward pass each (batched by the engine)."""
    ctx.extras["incremental"] = False

    def score(corners: Sequence[tuple[int, int]]) -> torch.Tensor:
        batch = ctx.x.repeat(len(corners), 1, 1, 1)
        for j, (y, x) in enumerate(corners):
            batch[j, :, y : y + patch, x : x + patch] = baseline[0, :, y : y + patch, x : x + patch]
        return ctx.scores(batch)

    return score


def incremental_scorer(ctx: MethodContext, baseline: torch.Tensor, patch: int) -> Scorer:
    """Scores from incremental passes (only what each patch reaches is recomputed, exactly) where the
    model's graph allows; else plain passes, with a note saying why."""
    found = ctx.shared("incremental_plan", lambda: _plan_for(ctx))
    if isinstance(found, str):
        ctx.extras["incremental"] = False
        ctx.note(f"Incremental occlusion was not possible ({found}); every window ran a full forward pass.")
        return plain_scorer(ctx, baseline, patch)
    if not found.saves_work:  # no convolution or pooling on the input's path: plain passes are cheaper
        ctx.extras["incremental"] = False
        ctx.note("Incremental occlusion would recompute every layer in full here; plain passes ran.")
        return plain_scorer(ctx, baseline, patch)
    ctx.extras["incremental"] = True
    if found.reason:
        ctx.note(f"Incremental occlusion: {found.reason}")
    target, adapter = ctx.target, ctx.model.adapter
    plain: list[Scorer] = []

    def score(corners: Sequence[tuple[int, int]]) -> torch.Tensor:
        if plain:
            return plain[0](corners)
        out = found.outputs(corners, patch, baseline)
        ctx.count_passes(len(corners))
        share = found.work_share()
        if share > MAX_WORK_SHARE:  # regions span (nearly) whole maps: a plain pass costs less
            plain.append(plain_scorer(ctx, baseline, patch))
            ctx.note(
                f"Incremental occlusion would recompute {share:.0%} of the convolutions per window at this "
                "image and patch size; after the first batch, the windows ran plain forward passes."
            )
        return adapter.perturbation_score(target, out).detach().float()

    return score


def _plan_for(ctx: MethodContext) -> IncrementalPlan | str:
    """The incremental plan of ctx's model on ctx's image, or why there is none."""
    module = getattr(ctx.model, "module", None)
    if not isinstance(module, nn.Module):
        return "the model is not a torch module"
    if getattr(type(ctx.model.adapter), "forward", None) is not TaskAdapter.forward:
        return f"its {ctx.model.task} output is post-processed outside the network's graph"
    found = plan(module, ctx.x)
    if not isinstance(found, str):
        ctx.count_passes(2)  # the unoccluded activations and the plan's check window
    return found


def adaptive_windows(ny: int, nx: int, budget: float) -> int:
    """How many of the ny x nx windows adaptive occlusion computes."""
    return max(1, min(ny * nx, math.ceil(budget * ny * nx)))


def coarse_share(budget: float) -> float:
    # Half the budget on the coarse grid, half on drilling down where it changes.
    return budget / 2


class _Windows:
    """The drops of the ny x nx windows as they are computed, and the map they make."""

    def __init__(self, ctx: MethodContext, scorer: Scorer, ys: list[int], xs: list[int], patch: int) -> None:
        self.ctx, self.scorer, self.ys, self.xs, self.patch = ctx, scorer, ys, xs, patch
        self.stride = ys[1] - ys[0] if len(ys) > 1 else patch
        device = ctx.x.device
        self.drops = torch.zeros(len(ys), len(xs), device=device)
        self.known = torch.zeros(len(ys), len(xs), dtype=torch.bool, device=device)
        self.reference = ctx.model.adapter.perturbation_score(ctx.target, ctx.output())[0].float()
        self.cover_y = coverage(ys, patch, ctx.x.shape[2], device)
        self.cover_x = coverage(xs, patch, ctx.x.shape[3], device)

    @property
    def total(self) -> int:
        return len(self.ys) * len(self.xs)

    def run(
        self, cells: list[tuple[int, int]], message: str, after: Callable[[int], None] | None = None
    ) -> None:
        """Compute the drops of `cells` (window indices), calling `after(done)` after each batch."""

        def body(start: int, stop: int) -> None:
            part = cells[start:stop]
            scores = self.scorer([(self.ys[i], self.xs[j]) for i, j in part]).to(self.drops.device)
            rows = torch.tensor([i for i, _ in part], device=self.drops.device)
            cols = torch.tensor([j for _, j in part], device=self.drops.device)
            self.drops[rows, cols] = self.reference - scores
            self.known[rows, cols] = True
            if after is not None:
                after(stop)

        self.ctx.for_batches(len(cells), body, message)

    def map(self, drops: torch.Tensor | None = None) -> torch.Tensor:
        return drops_to_map(self.drops if drops is None else drops, self.cover_y, self.cover_x)

    def interpolated(self, step: int) -> torch.Tensor:
        """All drops, interpolated from the sub-grid of `step` (which must be computed)."""
        rows, cols = sub_indices(len(self.ys), step), sub_indices(len(self.xs), step)
        return interpolate_drops(self.drops, rows, cols)


def occlusion_map(ctx: MethodContext, scorer_for: Callable[[torch.Tensor, int], Scorer]) -> torch.Tensor:
    """The occlusion map [H, W] of ctx's parameters; `scorer_for(baseline, patch)` scores windows."""
    p = ctx.params
    _, _, h, w = ctx.x.shape
    patch, stride = int(p["patch"]), int(p["stride"])
    if patch > min(h, w):
        raise InvalidParameter(f"The occlusion patch ({patch} px) is larger than the image ({w}x{h}).")
    baseline = occlusion_baseline(ctx.x, p["baseline"])
    grid = _Windows(
        ctx,
        scorer_for(baseline, patch),
        window_starts(h, patch, stride),
        window_starts(w, patch, stride),
        patch,
    )
    if p["mode"] == "adaptive":
        return _adaptive(ctx, grid, float(p["budget"]))
    return _progressive(ctx, grid)


def _progressive(ctx: MethodContext, grid: _Windows) -> torch.Tensor:
    """Every window, coarse levels first; after each level but the last, a preview of the map so far."""
    ny, nx = grid.drops.shape
    levels = coarse_to_fine(ny, nx, coarse_step(ny, nx))
    cells = [cell for level, _ in levels for cell in level]
    ends, shown = [], [0]
    for level, step in levels[:-1]:
        ends.append(((ends[-1][0] if ends else 0) + len(level), step))

    def after(done: int) -> None:
        reached = [(end, step) for end, step in ends if end <= done and end > shown[0]]
        if reached and ctx.wants_preview:
            end, step = reached[-1]
            shown[0] = end
            ctx.preview(grid.map(grid.interpolated(step)), f"coarse: {end} of {len(cells)} windows, refining")

    grid.run(cells, "Occlusion windows", after)
    ctx.extras["mode"] = "exact"
    ctx.extras["windows"] = len(cells)
    return grid.map()


def _adaptive(ctx: MethodContext, grid: _Windows, budget: float) -> torch.Tensor:
    """A coarse grid, then the windows inside its most changing cells; the rest interpolated."""
    ny, nx = grid.drops.shape
    allowed = adaptive_windows(ny, nx, budget)
    step, sparse = _adaptive_step(ny, nx, budget, grid.patch // grid.stride)
    rows, cols = sub_indices(ny, step), sub_indices(nx, step)
    coarse = [(i, j) for i in rows for j in cols]
    grid.run(coarse, "Occlusion, coarse windows")
    estimate = grid.interpolated(step)
    if ctx.wants_preview:
        ctx.preview(grid.map(estimate), f"coarse: {len(coarse)} of {grid.total} windows, drilling down")
    extra = drill_down(estimate, rows, cols, max(0, allowed - len(coarse)))
    if extra:
        grid.run(extra, "Occlusion, drilling down")
    drops = torch.where(grid.known, grid.drops, grid.interpolated(step))
    computed = len(coarse) + len(extra)
    ctx.extras["mode"] = "adaptive"
    ctx.extras["windows"] = computed
    ctx.extras["windows_total"] = grid.total
    ctx.note(
        f"Adaptive occlusion (approximate): {computed} of {grid.total} windows computed "
        f"({computed / grid.total:.0%}), the rest interpolated from a coarse grid."
        + (
            f" Within this budget the coarse windows are {step * grid.stride} px apart, more than the "
            f"{grid.patch} px patch, so a small object between them can be missed: a larger budget or a "
            "smaller stride (adaptive pays off from a stride of a quarter patch) gives a closer map."
            if sparse
            else ""
        )
    )
    return grid.map(drops)


def _adaptive_step(ny: int, nx: int, budget: float, patch_in_strides: int) -> tuple[int, bool]:
    """(coarse grid step, whether its windows are farther apart than a patch).

    Half the budget goes to the coarse grid and half to drilling down, unless that puts coarse windows
    more than a patch apart (a small object between two of them would go unseen): then the coarse grid
    takes as much of the budget as it needs, up to all of it."""
    step = coarse_step(ny, nx, coarse_share(budget))
    cap = 1 << max(0, patch_in_strides.bit_length() - 1)  # the largest power of two within a patch
    if step > cap:
        step = max(cap, coarse_step(ny, nx, budget))
    return step, step > cap
