"""Model-free references: what an edge detector or a classical saliency model finds in the image.

A map that looks like these says little about the model (Adebayo et al. 2018).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

from .base import MethodSpec, Param, register
from .lesson import Lesson

if TYPE_CHECKING:
    from .context import MethodContext


def _gray(ctx: MethodContext) -> np.ndarray:
    return cv2.cvtColor(ctx.model.to_image(ctx.x), cv2.COLOR_RGB2GRAY)


def _as_result(ctx: MethodContext, saliency: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.from_numpy(np.ascontiguousarray(saliency, dtype=np.float32))
    return t, t.clone()


def sobel_magnitude(gray: np.ndarray, ksize: int = 3, sigma: float = 0.0) -> np.ndarray:
    """Gradient magnitude of a grayscale uint8 image (values in grey levels per pixel)."""
    img = gray.astype(np.float32)
    if sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=ksize)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=ksize)
    return cv2.magnitude(gx, gy)


def _edges_sobel(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    return _as_result(ctx, sobel_magnitude(_gray(ctx), int(ctx.params["ksize"]), float(ctx.params["sigma"])))


def _edges_canny(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    p = ctx.params
    gray = _gray(ctx)
    if p["sigma"] > 0:
        gray = cv2.GaussianBlur(gray, (0, 0), float(p["sigma"]))
    low, high = sorted((int(p["low"]), int(p["high"])))
    return _as_result(ctx, cv2.Canny(gray, low, high).astype(np.float32) / 255.0)


def spectral_residual(image: np.ndarray) -> np.ndarray:
    """OpenCV's spectral-residual saliency (Hou & Zhang 2007) of an RGB uint8 image, in [0, 1]."""
    detector = cv2.saliency.StaticSaliencySpectralResidual_create()
    ok, saliency = detector.computeSaliency(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("OpenCV's spectral-residual saliency failed on this image.")
    return saliency.astype(np.float32)


def _spectral_residual(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    return _as_result(ctx, spectral_residual(ctx.model.to_image(ctx.x)))


_NO_MODEL = (0, 0)
register(
    MethodSpec(
        id="edges_sobel",
        featured={"compare": 4},
        family="reference",
        title="Sobel edges",
        description="Image gradient magnitude: a model-free reference that many saliency maps resemble.",
        compute=_edges_sobel,
        params=(
            Param("ksize", "choice", 3, "Sobel kernel size.", choices=(3, 5, 7)),
            Param(
                "sigma",
                "float",
                1.0,
                "Gaussian smoothing before differentiation, in pixels.",
                min=0.0,
                max=10.0,
                step=0.5,
            ),
        ),
        needs_target=False,
        cost=lambda p, info: _NO_MODEL,
        reference="Sobel & Feldman 1968",
        lesson=Lesson(
            computes="A model-free reference: the image's gradient magnitude (Sobel filters on the blurred grey "
            "image). It knows nothing about the model.",
            formula=r"M = \sqrt{(G_x * I_\sigma)^2 + (G_y * I_\sigma)^2}",
            cost="No model pass.",
            pitfalls=(
                "Not an explanation: it is here to be compared with. A saliency map that matches it closely "
                "may be showing image structure rather than what the model used.",
            ),
        ),
    )
)
register(
    MethodSpec(
        id="edges_canny",
        family="reference",
        title="Canny edges",
        description="Thin binary edges from the Canny detector: the sharpest model-free reference.",
        compute=_edges_canny,
        params=(
            Param("low", "int", 50, "Lower hysteresis threshold (grey levels).", min=0, max=500, step=1),
            Param("high", "int", 150, "Upper hysteresis threshold (grey levels).", min=0, max=1000, step=1),
            Param(
                "sigma",
                "float",
                1.0,
                "Gaussian smoothing before edge detection, in pixels.",
                min=0.0,
                max=10.0,
                step=0.5,
            ),
        ),
        needs_target=False,
        cost=lambda p, info: _NO_MODEL,
        reference="Canny 1986",
        lesson=Lesson(
            computes="A model-free reference: thin binary edges from the Canny detector (gradient magnitude, "
            "non-maximum suppression, hysteresis thresholds).",
            formula=r"M = \mathrm{hysteresis}_{\,\text{low},\,\text{high}}\!\left(\mathrm{NMS}\big(\|\nabla I_\sigma\|\big)\right)",
            cost="No model pass.",
            pitfalls=("A reference, not an explanation.",),
        ),
    )
)
register(
    MethodSpec(
        id="spectral_residual",
        # Shown beside a salient-object model's own output.
        featured={"reference": 1},
        family="reference",
        title="Spectral residual",
        description="Classical bottom-up saliency from the image's log-spectrum (OpenCV contrib): where a "
        "human eye might look first, with no model involved.",
        compute=_spectral_residual,
        needs_target=False,
        cost=lambda p, info: _NO_MODEL,
        reference="Hou & Zhang 2007, Saliency Detection: A Spectral Residual Approach",
        lesson=Lesson(
            computes="Classical bottom-up saliency: what stands out from the image's own statistics, from the "
            "residual of its log-amplitude spectrum.",
            formula=r"R(f) = \log |F(I)| - h * \log |F(I)|, \qquad M = g * \left| F^{-1}\!\left[e^{R(f) + i P(f)}\right] "
            r"\right|^2",
            cost="No model pass.",
            pitfalls=("A reference for what is visually conspicuous, which a classifier need not use.",),
            paper="Hou & Zhang 2007, Saliency Detection: A Spectral Residual Approach",
        ),
    )
)
