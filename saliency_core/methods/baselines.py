"""Baseline distributions for the reference-based methods (DeepLIFT-SHAP, GradientSHAP).

A distribution is a finite set of reference inputs shaped like the input: blurred copies at several
strengths, the black image, uniform noise, or the bundled sample images (each resized to the input's
size and preprocessed by the model's own pipeline).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import InvalidParameter
from ..samples import list_samples
from .common import default_blur_sigma, gaussian_blur
from .gradients import ig_baseline

if TYPE_CHECKING:
    from .context import MethodContext

DISTRIBUTIONS = ("blur", "uniform", "samples", "black")
DISTRIBUTION_HELP = (
    "What the references are drawn from: blurred copies of the image (from light to heavy blur), "
    "uniform noise, the bundled sample images, or the black image alone."
)
# Blur strengths, as multiples of the default blur (1/20 of the longer side): light to heavy.
BLUR_SPAN = (0.25, 2.0)


def reference_count(kind: str, count: int) -> int:
    """How many references a set of `count` from distribution `kind` holds (what cost formulas use)."""
    if kind == "black":
        return 1  # a single image: more copies would only repeat the same passes
    if kind == "samples":
        return max(1, min(int(count), len(list_samples())))
    return max(1, int(count))


def blur_sigmas(x: torch.Tensor, count: int) -> list[float]:
    """`count` blur strengths spaced geometrically over BLUR_SPAN times the default blur."""
    base = default_blur_sigma(x)
    if count == 1:
        return [base]
    lo, hi = BLUR_SPAN
    return [base * float(v) for v in np.geomspace(lo, hi, count)]


@lru_cache(maxsize=64)
def _sample_pixels(path: str, width: int, height: int) -> np.ndarray:
    """A bundled sample, RGB, resized to width x height (kept: every run would decode it again)."""
    with Image.open(path) as im:
        resized = im.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
    array = np.asarray(resized).copy()
    array.setflags(write=False)
    return array


def sample_references(ctx: MethodContext, count: int, seed: int) -> torch.Tensor:
    """`count` bundled samples (a seeded choice without repetition), as model inputs shaped like x."""
    x = ctx.x
    samples = list_samples()
    if not samples:
        raise InvalidParameter("No bundled samples are installed: pick another baseline distribution.")
    if x.shape[1] != 3:
        raise InvalidParameter(
            f"The bundled samples are RGB pictures; this model takes {x.shape[1]} channels. "
            "Pick another baseline distribution."
        )
    order = torch.randperm(len(samples), generator=torch.Generator().manual_seed(seed)).tolist()
    height, width = x.shape[-2:]
    refs = []
    for i in order[: reference_count("samples", count)]:
        ref = ctx.model.preprocess(_sample_pixels(str(samples[i].path), int(width), int(height)))
        if tuple(ref.shape[-2:]) != (height, width):  # the model's pipeline crops: fit it back
            ref = F.interpolate(ref, size=(height, width), mode="bilinear", align_corners=False)
        refs.append(ref.to(x.device, x.dtype))
    return torch.cat(refs)


def reference_set(ctx: MethodContext, kind: str, count: int, seed: int) -> torch.Tensor:
    """The references [n, C, H, W] of distribution `kind` (n = reference_count(kind, count))."""
    x = ctx.x
    n = reference_count(kind, count)
    if kind == "black":
        return ig_baseline(ctx, "black", seed)
    if kind == "uniform":
        return torch.cat([ig_baseline(ctx, "uniform", seed + k) for k in range(n)])
    if kind == "blur":
        return torch.cat([gaussian_blur(x, sigma) for sigma in blur_sigmas(x, n)])
    if kind == "samples":
        return sample_references(ctx, n, seed)
    raise InvalidParameter(f"Unknown baseline distribution '{kind}' (one of {', '.join(DISTRIBUTIONS)}).")
