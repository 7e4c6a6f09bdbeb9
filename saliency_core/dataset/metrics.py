"""The metrics of one image: for each method (and the random-map baseline) deletion and insertion AUC,
the pointing game and energy pointing (where a mask exists) and the sanity similarity (where asked).

Shared by `evaluate` (datasets, in-process or on Ray) and saliency_core.metrics.report (the bundled scenes).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..methods import MethodInfo, list_methods
from ..metrics.deletion_insertion import deletion, insertion
from ..metrics.pointing import energy_pointing, pointing_game
from ..metrics.sanity import cascading_randomization
from ..models import LoadedModel
from ..targets import Target

RANDOM = "random"  # the baseline: a uniformly random map, seeded per image
METRICS = ("deletion", "insertion", "pointing", "energy_pointing", "sanity")
NAN = float("nan")


def method_params(info: MethodInfo, params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of `params` that method `info` takes (one --param list serves several methods)."""
    names = {p["name"] for p in info.params}
    return {k: v for k, v in params.items() if k in names}


def random_map(shape: tuple[int, int], seed: int) -> np.ndarray:
    """The baseline map of an image: uniform in [0, 1), from `seed`."""
    return np.random.default_rng(seed).random(shape)


def map_metrics(
    model: LoadedModel,
    x: torch.Tensor,
    target: Target,
    saliency: torch.Tensor | np.ndarray,
    mask: np.ndarray | None,
    steps: int,
    substrate: str,
    tolerance: float = 15.0,
) -> dict[str, float]:
    """Deletion / insertion AUC, pointing hit (1.0 / 0.0) and energy pointing of one map (NaN without a mask)."""
    d = deletion(model, x, target, saliency, steps=steps, substrate=substrate)
    i = insertion(model, x, target, saliency, steps=steps, substrate=substrate)
    hit = float(pointing_game(saliency, mask, tolerance)) if mask is not None else NAN
    energy = energy_pointing(saliency, mask) if mask is not None else NAN
    return {"deletion": float(d.auc), "insertion": float(i.auc), "pointing": hit, "energy_pointing": energy}


def image_rows(
    model: LoadedModel,
    x: torch.Tensor,
    target: Target,
    mask: np.ndarray | None,
    methods: Sequence[str],
    *,
    seed: int,
    steps: int = 50,
    substrate: str = "blur",
    sanity: bool = False,
    params: Mapping[str, Any] | None = None,
    tolerance: float = 15.0,
    cold: bool = True,
) -> Iterator[dict[str, Any]]:
    """One row per method of `methods` (RANDOM among them is the baseline), yielded as each finishes, so a
    caller can store it before the next starts. `seed` seeds the random map and the randomisation of the
    sanity check; `cold` clears the engine's cache before each map, so seconds are a cold map's."""
    infos = {m.id: m for m in list_methods()}
    params = dict(params or {})
    for method in methods:
        if method == RANDOM:
            sal: Any = random_map(tuple(x.shape[-2:]), seed)
            seconds, own = NAN, {}
        else:
            info = infos[method]
            own = method_params(info, params)
            if cold:
                model.engine.cache.clear()
            a = model.engine.attribute(
                model, x, method, target if info.needs_target else None, use_cache=False, **own
            )
            sal, seconds = a.map, a.seconds
        row: dict[str, Any] = {
            "method": method,
            **map_metrics(model, x, target, sal, mask, steps, substrate, tolerance),
        }
        row["sanity"] = NAN
        if sanity and method != RANDOM:
            check = cascading_randomization(model, x, target, method, seed=seed, method_params=own)
            row["sanity"] = float(check.spearman[-1])
        row["seconds"] = seconds
        yield row
