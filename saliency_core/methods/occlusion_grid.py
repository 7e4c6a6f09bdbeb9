"""The grid of occlusion windows, coarse to fine: which windows to compute first, how a partial set of
score drops becomes a map (linear interpolation between computed windows), and where adaptive occlusion
drills down (the coarse cells whose corners differ most, as Krypton's adaptive drill-down does).

The drop of window (i, j) is a smooth function of the window's position for patches larger than the
stride, so a grid every k-th window, interpolated, is a good first map; refining fills in the rest."""

from __future__ import annotations

import math

import torch

COARSE_SHARE = 0.10  # the first map costs at most this share of the windows (issue 14: within 10%)


def window_starts(size: int, patch: int, stride: int) -> list[int]:
    """Window offsets along one axis; the last window may hang over the edge (as captum slides)."""
    count = math.ceil(max(size - patch, 0) / stride) + 1
    return [i * stride for i in range(count)]


def sub_indices(n: int, step: int) -> list[int]:
    """Every `step`-th index of range(n), and the last one (so interpolation never extrapolates)."""
    found = list(range(0, n, step))
    if found[-1] != n - 1:
        found.append(n - 1)
    return found


def coarse_step(ny: int, nx: int, share: float = COARSE_SHARE, most: int | None = None) -> int:
    """The smallest power-of-two step whose sub-grid holds at most `share` of the ny x nx windows; the
    coarsest (the corners, or `most`) when none does; 1 when the grid is too small to thin out."""
    if max(ny, nx) <= 2 or (most is not None and most < 2):
        return 1
    step = 2
    while step < max(ny, nx) - 1 and (most is None or step * 2 <= most):
        if len(sub_indices(ny, step)) * len(sub_indices(nx, step)) <= share * ny * nx:
            return step
        step *= 2
    return step


def coarse_to_fine(ny: int, nx: int, step: int) -> list[tuple[list[tuple[int, int]], int]]:
    """The windows in levels: every `step`-th one first, then every step/2-th, ..., each window once.

    Returns [(windows of the level, step reached)]: after level l, every window of the step's sub-grid
    has been computed."""
    done: set[tuple[int, int]] = set()
    levels = []
    while True:
        rows, cols = sub_indices(ny, step), sub_indices(nx, step)
        level = [(i, j) for i in rows for j in cols if (i, j) not in done]
        done.update(level)
        if level:
            levels.append((level, step))
        if step == 1:
            return levels
        step //= 2


def interpolation_matrix(n: int, known: list[int], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """[n, len(known)] weights of 1-D linear interpolation from the sorted indices `known` onto range(n)."""
    a = torch.zeros(n, len(known), dtype=dtype, device=device)
    for k in range(len(known) - 1):
        lo, hi = known[k], known[k + 1]
        for i in range(lo, hi + 1):
            t = (i - lo) / (hi - lo)
            a[i, k] = 1 - t
            a[i, k + 1] = t
    if len(known) == 1:
        a[:, 0] = 1
    return a


def interpolate_drops(drops: torch.Tensor, rows: list[int], cols: list[int]) -> torch.Tensor:
    """The [ny, nx] drops, linearly interpolated from those at the sub-grid rows x cols."""
    ny, nx = drops.shape
    ay = interpolation_matrix(ny, rows, drops.dtype, drops.device)
    ax = interpolation_matrix(nx, cols, drops.dtype, drops.device)
    return ay @ drops[rows][:, cols] @ ax.T


def coverage(starts: list[int], patch: int, size: int, device: torch.device) -> torch.Tensor:
    """[len(starts), size] 0/1: which pixels along an axis each window covers."""
    cover = torch.zeros(len(starts), size, device=device)
    for i, s in enumerate(starts):
        cover[i, s : s + patch] = 1
    return cover


def drops_to_map(drops: torch.Tensor, cover_y: torch.Tensor, cover_x: torch.Tensor) -> torch.Tensor:
    """Per pixel, the mean drop of the windows covering it ([H, W]; 0 where none does): the occlusion map."""
    total = cover_y.T @ drops @ cover_x
    count = cover_y.sum(0)[:, None] * cover_x.sum(0)[None, :]
    return total / count.clamp(min=1)


def drill_down(coarse: torch.Tensor, rows: list[int], cols: list[int], budget: int) -> list[tuple[int, int]]:
    """Windows to compute inside the coarse cells whose four corner drops differ most, most changing cell
    first, until `budget` windows are taken (a cell is taken whole or not at all)."""
    cells = []
    for a in range(len(rows) - 1):
        for b in range(len(cols) - 1):
            corners = coarse[
                [rows[a], rows[a], rows[a + 1], rows[a + 1]], [cols[b], cols[b + 1], cols[b], cols[b + 1]]
            ]
            cells.append((float(corners.max() - corners.min()), a, b))
    cells.sort(key=lambda c: -c[0])
    chosen: list[tuple[int, int]] = []
    taken: set[tuple[int, int]] = {(i, j) for i in rows for j in cols}
    for _, a, b in cells:
        inside = [
            (i, j)
            for i in range(rows[a], rows[a + 1] + 1)
            for j in range(cols[b], cols[b + 1] + 1)
            if (i, j) not in taken
        ]
        if len(chosen) + len(inside) > budget:
            continue
        chosen += inside
        taken.update(inside)
    return chosen
