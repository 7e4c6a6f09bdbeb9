"""Small tensor helpers shared by the method families."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def upsample(raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A layer-resolution map [h, w] bilinearly resized to the input's [H, W]."""
    if tuple(raw.shape[-2:]) == tuple(size):
        return raw.clone()
    return F.interpolate(raw[None, None].float(), size=size, mode="bilinear", align_corners=False)[0, 0]


def shifted_upsample(
    grids: torch.Tensor, shifts: torch.Tensor, size: tuple[int, int], cell: int
) -> torch.Tensor:
    """Coarse grids [N, gh, gw] bilinearly upsampled by `cell` and each cropped to `size` at its own
    (dy, dx) in shifts [N, 2]: RISE's masks, made in one batch on the grids' device (so only the small
    grids cross from a CPU generator to an accelerator, not N full-size masks)."""
    n, gh, gw = grids.shape
    h, w = size
    up = F.interpolate(
        grids[:, None].float(), size=(gh * cell, gw * cell), mode="bilinear", align_corners=False
    )
    shifts = shifts.to(grids.device, torch.long)
    rows = (shifts[:, 0:1] + torch.arange(h, device=grids.device))[:, :, None]
    cols = (shifts[:, 1:2] + torch.arange(w, device=grids.device))[:, None, :]
    return up[:, 0][torch.arange(n, device=grids.device)[:, None, None], rows, cols]


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [N, C, H, W] with reflect padding."""
    if sigma <= 0:
        return x.clone()
    radius = max(1, math.ceil(3 * sigma))
    coords = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    pad_h = min(radius, x.shape[-2] - 1)
    pad_w = min(radius, x.shape[-1] - 1)
    out = F.pad(x, (pad_w, pad_w, 0, 0), mode="reflect") if pad_w > 0 else x
    kx = kernel[radius - pad_w : radius + pad_w + 1]
    kx = (kx / kx.sum()).view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    out = F.conv2d(out, kx, groups=channels)
    out = F.pad(out, (0, 0, pad_h, pad_h), mode="reflect") if pad_h > 0 else out
    ky = kernel[radius - pad_h : radius + pad_h + 1]
    ky = (ky / ky.sum()).view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    return F.conv2d(out, ky, groups=channels)


def default_blur_sigma(x: torch.Tensor) -> float:
    """Blur strong enough to remove object detail: 1/20 of the longer side (about 11 px at 224)."""
    return max(x.shape[-1], x.shape[-2]) / 20.0


def channel_sum(raw: torch.Tensor) -> torch.Tensor:
    """Per-pixel attribution [C, H, W] -> map [H, W] (the sum keeps signs and completeness)."""
    return raw.sum(0)


class BatchDraws:
    """A seeded generator for random numbers drawn batch by batch, that replays a batch redone from the
    same start (the engine retries a batch that ran out of memory at half the size), so the numbers, and
    the map, never depend on how the work was split."""

    def __init__(self, seed: int) -> None:
        self._generator = torch.Generator().manual_seed(seed)
        self._start = -1
        self._state = self._generator.get_state()

    def at(self, start: int) -> torch.Generator:
        """The generator, positioned for the batch that begins at item `start`."""
        if start == self._start:
            self._generator.set_state(self._state)
        else:
            self._start, self._state = start, self._generator.get_state()
        return self._generator
