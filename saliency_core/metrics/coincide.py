"""When two methods give the same map, and why: known equivalences with the condition that makes them exact,
checked on the model's structure and then verified on the current input.

A teaching point, not a shortcut: nothing here replaces running a method. The claim is made only when the
condition holds on the model and the maps really agree (correlation above a tolerance), so a model where
the condition fails, or an input where a method clips differently, is never said to coincide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import SaliencyError
from ..methods.base import get_method, list_methods
from ..models.loaded import LoadedModel
from ..targets import Target

Condition = Callable[[LoadedModel, str], bool]


def feeds_gap_linear(model: LoadedModel, layer: str) -> bool:
    """Whether `layer` is the one the model's linear classifier reads through global average pooling (the
    default CAM layer of a model with a CAM head)."""
    layers = model.layers()
    if not layers or layer != layers[0]:
        return False
    try:
        weight, _ = model.cam_head()
        channels = model.engine.layer_channels(model, layer)
    except SaliencyError:
        return False
    # A head after a hidden layer reads other features than the layer's channels: no equivalence then.
    return weight.ndim == 2 and int(weight.shape[1]) == channels


@dataclass(frozen=True)
class Equivalence:
    """Methods whose maps are equal (up to a positive scale) whenever `condition` holds."""

    methods: tuple[str, ...]
    condition: Condition
    when: str  # the condition in words
    why: str  # the algebra in one or two sentences


EQUIVALENCES: tuple[Equivalence, ...] = (
    Equivalence(
        ("gradcam", "xgradcam", "hirescam", "cam"),
        feeds_gap_linear,
        "the explained layer is followed by global average pooling and a single linear classifier",
        "The class score is then S = Σₖ wₖ · mean(Aᵏ), so ∂S/∂Aᵏᵢⱼ = wₖ/(h·w) at every position: Grad-CAM's "
        "channel weights are CAM's linear weights divided by h·w; HiResCAM's elementwise product sums to the "
        "same map because the gradient is spatially constant; XGrad-CAM's activation-normalised weights reduce "
        "to the same wₖ/(h·w). The methods differ only on models where the gradient varies over the layer.",
    ),
)


@dataclass(frozen=True)
class Coincidence:
    """Methods that give the same map on this model and input, and why."""

    methods: tuple[str, ...]
    titles: tuple[str, ...]
    layer: str
    when: str
    why: str
    correlation: float  # the lowest pairwise correlation of the maps

    def sentence(self) -> str:
        names = ", ".join(self.titles[:-1]) + f" and {self.titles[-1]}"
        return (
            f"On this model {names} give the same map (correlation ≥ {self.correlation:.4f} at layer "
            f"{self.layer}), because {self.when}. {self.why}"
        )


def equivalences_of(method: str) -> list[Equivalence]:
    """The declared equivalences a method takes part in."""
    return [e for e in EQUIVALENCES if method in e.methods]


def coincidences(
    model: LoadedModel,
    x: torch.Tensor,
    method: str,
    target: Target | int | None = None,
    tolerance: float = 0.999,
    **params: Any,
) -> list[Coincidence]:
    """The equivalences of `method` that hold here: the condition is true on the model at the method's
    layer, and every pair of the group's maps (default parameters, the same layer) correlates above
    `tolerance`. Methods of the group that cannot run on the model (CAM without a head) are left out."""
    spec = get_method(method)
    known = {m.id for m in list_methods(task=model.task)}
    layer = spec.resolve(dict(params), model.layers()).get("layer")
    found = []
    for rule in equivalences_of(method):
        if layer is None or not rule.condition(model, layer):
            continue
        maps, ids = [], []
        for other in (m for m in rule.methods if m in known):
            try:
                result = model.engine.attribute(model, x, other, target, layer=layer)
            except SaliencyError:
                continue
            maps.append(np.asarray(result.map, dtype=np.float64).ravel())
            ids.append(other)
        if method not in ids or len(ids) < 2:
            continue
        lowest = _lowest_correlation(maps)
        if lowest >= tolerance:
            titles = tuple(get_method(m).title for m in ids)
            found.append(Coincidence(tuple(ids), titles, layer, rule.when, rule.why, lowest))
    return found


def _lowest_correlation(maps: list[np.ndarray]) -> float:
    """The lowest Pearson correlation between any two maps (0 when one is constant: nothing to compare)."""
    lowest = 1.0
    for i in range(len(maps)):
        for j in range(i + 1, len(maps)):
            a, b = maps[i] - maps[i].mean(), maps[j] - maps[j].mean()
            norm = float(np.linalg.norm(a) * np.linalg.norm(b))
            lowest = min(lowest, float(a @ b) / norm if norm > 0 else 0.0)
    return lowest
