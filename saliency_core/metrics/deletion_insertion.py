"""Deletion and insertion curves (Petsiuk et al. 2018, RISE) with their area under the curve.

Pixels are taken in order of saliency (highest first; ties in row-major order), in `steps` equal pixel
counts. Deletion replaces them one step at a time by a substrate and tracks the target's score; insertion
starts from the substrate and puts the original pixels back. A faithful map makes deletion fall fast (low
AUC) and insertion rise fast (high AUC). For classification the score is the softmax probability of the
target class, as in the paper; other tasks use their adapter's `faithfulness_score`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import InvalidParameter
from ..methods.common import default_blur_sigma, gaussian_blur
from ..models.loaded import LoadedModel
from ..targets import Target
from ._common import (
    CancelFn,
    MapLike,
    ProgressFn,
    as_map,
    check_input,
    checked_batch_size,
    checked_seed,
    curve_steps,
    resolve_model,
    resolve_target,
    step,
)

SUBSTRATES = ("blur", "black", "mean")
KINDS = ("deletion", "insertion")


@dataclass(frozen=True, eq=False)
class Curve:
    """Scores of the target at each fraction of pixels deleted or inserted; `auc` by the trapezoid rule."""

    kind: str
    fractions: np.ndarray
    scores: np.ndarray
    auc: float
    substrate: str
    label: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: floats and lists."""
        return {
            "kind": self.kind,
            "label": self.label,
            "substrate": self.substrate,
            "auc": float(self.auc),
            "fractions": [float(v) for v in self.fractions],
            "scores": [float(v) for v in self.scores],
        }


def substrate_image(model: LoadedModel, x: torch.Tensor, substrate: str | torch.Tensor) -> torch.Tensor:
    """What removed pixels become: "blur" (Gaussian, sigma = 1/20 of the longer side), "black", "mean"
    (each channel's mean), or a tensor shaped like x."""
    if isinstance(substrate, torch.Tensor):
        if substrate.shape[-3:] != x.shape[-3:]:
            raise InvalidParameter(f"A substrate tensor must be shaped like the input {tuple(x.shape)}.")
        return substrate.detach().to(x.device, x.dtype).expand_as(x)
    if substrate == "blur":
        return gaussian_blur(x, default_blur_sigma(x))
    if substrate == "black":
        return model.black(x)
    if substrate == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
    raise InvalidParameter(f"Substrate must be one of {', '.join(SUBSTRATES)}; got {substrate!r}.")


def pixel_order(saliency: MapLike) -> np.ndarray:
    """Flat pixel indices, most salient first; ties keep row-major order (deterministic)."""
    return np.argsort(-as_map(saliency).ravel(), kind="stable")


def deletion(
    model: LoadedModel | nn.Module,
    x: torch.Tensor,
    target: Target | int | None,
    saliency: MapLike,
    steps: int = 50,
    substrate: str | torch.Tensor = "blur",
    batch_size: int = 0,
    progress: ProgressFn | None = None,
    cancel: CancelFn | threading.Event | None = None,
) -> Curve:
    """Deletion curve: the most salient pixels are replaced by the substrate first (lower AUC is better)."""
    order = _order_for(model, x, saliency)
    return ordered_curve(model, x, target, order, "deletion", steps, substrate, batch_size, progress, cancel)


def insertion(
    model: LoadedModel | nn.Module,
    x: torch.Tensor,
    target: Target | int | None,
    saliency: MapLike,
    steps: int = 50,
    substrate: str | torch.Tensor = "blur",
    batch_size: int = 0,
    progress: ProgressFn | None = None,
    cancel: CancelFn | threading.Event | None = None,
) -> Curve:
    """Insertion curve: the most salient pixels are put back onto the substrate first (higher AUC is better)."""
    order = _order_for(model, x, saliency)
    return ordered_curve(model, x, target, order, "insertion", steps, substrate, batch_size, progress, cancel)


def random_curve(
    model: LoadedModel | nn.Module,
    x: torch.Tensor,
    target: Target | int | None,
    kind: str,
    steps: int = 50,
    substrate: str | torch.Tensor = "blur",
    seed: int = 0,
    batch_size: int = 0,
    progress: ProgressFn | None = None,
    cancel: CancelFn | threading.Event | None = None,
) -> Curve:
    """The reference curve of a random pixel order (`kind` "deletion" or "insertion")."""
    x = check_input(resolve_model(model), x)  # a clear error before its shape is read
    n = int(x.shape[-1] * x.shape[-2])
    order = np.random.default_rng(checked_seed(seed)).permutation(n)
    curve = ordered_curve(model, x, target, order, kind, steps, substrate, batch_size, progress, cancel)
    return _relabel(curve, "random")


def ordered_curve(
    model: LoadedModel | nn.Module,
    x: torch.Tensor,
    target: Target | int | None,
    order: np.ndarray,
    kind: str,
    steps: int = 50,
    substrate: str | torch.Tensor = "blur",
    batch_size: int = 0,
    progress: ProgressFn | None = None,
    cancel: CancelFn | threading.Event | None = None,
) -> Curve:
    """The curve for an explicit pixel order (flat indices into [H, W], first = first removed/inserted)."""
    if kind not in KINDS:
        raise InvalidParameter(f"A curve's kind must be 'deletion' or 'insertion'; got {kind!r}.")
    steps = curve_steps(steps)
    batch_size = checked_batch_size(batch_size)
    lm = resolve_model(model)
    x = check_input(lm, x)
    height, width = x.shape[-2:]
    n = height * width
    order = np.asarray(order, dtype=np.int64).ravel()
    if order.shape != (n,) or not np.array_equal(np.sort(order), np.arange(n)):
        raise InvalidParameter(f"A pixel order must be a permutation of the {n} pixels of the input.")
    message = f"{kind.capitalize()} curve"
    step(progress, cancel, 0.0, message)
    tgt = resolve_target(lm, x, target)
    base = substrate_image(lm, x, substrate)
    start, end = (x, base) if kind == "deletion" else (base, x)
    counts = (np.arange(steps + 1, dtype=np.int64) * n) // steps
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    rank_t = torch.from_numpy(rank).view(1, 1, height, width).to(x.device)

    scores = np.empty(steps + 1, np.float64)
    # The two ends are the unperturbed image and the full substrate: the engine's forward cache serves them.
    for index, image in ((0, start), (steps, end)):
        with torch.no_grad():
            scores[index] = float(lm.adapter.faithfulness_score(tgt, lm.engine.forward(lm, image))[0])
    middle = np.arange(1, steps)
    size = batch_size if batch_size > 0 else lm.engine.auto_batch_size(x)
    for first in range(0, len(middle), size):
        idx = middle[first : first + size]
        keep = rank_t < torch.from_numpy(counts[idx]).to(x.device).view(-1, 1, 1, 1)
        batch = torch.where(keep, end, start)
        began = time.perf_counter()
        with lm.lock, torch.no_grad():
            values = lm.adapter.faithfulness_score(tgt, lm.forward(batch))
        lm.engine.record_speed(lm, "forward", time.perf_counter() - began, len(idx), tuple(batch.shape))
        lm.engine.forward_count += len(idx)
        scores[idx] = values.detach().double().cpu().numpy()
        step(progress, cancel, (first + len(idx)) / max(len(middle), 1), message)
    step(progress, cancel, 1.0, message)
    fractions = counts / n
    name = substrate if isinstance(substrate, str) else "custom"
    return Curve(kind, fractions, scores, float(np.trapezoid(scores, fractions)), name)


def _order_for(model: LoadedModel | nn.Module, x: torch.Tensor, saliency: MapLike) -> np.ndarray:
    x = check_input(resolve_model(model), x)  # a clear error before its shape is read
    sal = as_map(saliency)
    if sal.shape != tuple(x.shape[-2:]):
        raise InvalidParameter(
            f"The saliency map is {sal.shape[0]}x{sal.shape[1]} but the input is "
            f"{x.shape[-2]}x{x.shape[-1]}; pass Attribution.map (input resolution)."
        )
    return pixel_order(sal)


def _relabel(curve: Curve, label: str) -> Curve:
    return Curve(curve.kind, curve.fractions, curve.scores, curve.auc, curve.substrate, label)
