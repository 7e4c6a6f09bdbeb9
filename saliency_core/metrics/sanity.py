"""Sanity checks for saliency maps (Adebayo et al. 2018), always on a deep copy of the model.

- cascading randomisation: re-initialise the blocks from the output down, cumulatively, and see whether the
  map changes (a map that stays the same does not depend on what the model learned);
- independent randomisation: re-initialise one block at a time;
- random-logit test: the map for the target against the map for a random other class.
Similarities are Spearman rank correlation and SSIM of absolute maps (`similarity`).
"""

from __future__ import annotations

import copy
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import InvalidParameter
from ..hooks import get_layer
from ..models.loaded import LoadedModel
from ..targets import ClassTarget, Target
from ._common import (
    CancelFn,
    ProgressFn,
    check_input,
    checked_seed,
    resolve_model,
    resolve_target,
    step,
    sub_progress,
)
from .agreement import similarity


@dataclass(frozen=True, eq=False)
class SanityResult:
    """Maps per stage ("original" first) and their similarity to the original's map."""

    kind: str
    method: str
    stages: list[str]
    maps: list[torch.Tensor]
    spearman: list[float]
    ssim: list[float]
    params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (without the maps)."""
        return {
            "kind": self.kind,
            "method": self.method,
            "stages": list(self.stages),
            "spearman": [float(v) for v in self.spearman],
            "ssim": [float(v) for v in self.ssim],
        }


@dataclass(frozen=True, eq=False)
class RandomLogitResult:
    """The map for the target and for a random other class, and how similar they are."""

    method: str
    target: Target
    other: ClassTarget
    maps: list[torch.Tensor]
    spearman: float
    ssim: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "random_logit",
            "method": self.method,
            "target": self.target.describe(),
            "other": self.other.describe(),
            "spearman": float(self.spearman),
            "ssim": float(self.ssim),
        }


def default_stages(module: nn.Module) -> list[str]:
    """Learnable blocks, output first: the top-level children with parameters, in reverse order.

    When there are fewer than three, containers (Sequential, ModuleList) among them are opened one level.
    """
    names = [name for name, child in module.named_children() if _learnable(child)]
    while 0 < len(names) < 3:
        opened: list[str] = []
        for name in names:
            child = module.get_submodule(name)
            inner = [f"{name}.{n}" for n, c in child.named_children() if _learnable(c)]
            is_container = isinstance(child, (nn.Sequential, nn.ModuleList))
            opened.extend(inner if is_container and len(inner) > 1 else [name])
        if opened == names:
            break
        names = opened
    return list(reversed(names))


def randomize_(module: nn.Module, seed: int) -> None:
    """Re-initialise every parameter of `module` in place, reproducibly, without touching the global RNG.

    Each sub-module's `reset_parameters()` is used (batch norms also reset their running statistics);
    parameters a module owns without one are redrawn from N(0, their standard deviation).
    """
    devices = [p.device for p in module.parameters() if p.device.type == "cuda"]
    with torch.random.fork_rng(devices=devices[:1]), torch.no_grad():
        torch.manual_seed(seed)
        for sub in module.modules():
            reset = getattr(sub, "reset_parameters", None)
            if callable(reset):
                reset()
                continue
            for param in sub.parameters(recurse=False):
                std = float(param.std()) if param.numel() > 1 else 0.02
                param.normal_(0.0, std if std > 0 else 0.02)


def cascading_randomization(
    model: LoadedModel | nn.Module,
    x: torch.Tensor,
    target: Target | int | None,
    method: str,
    *,
    seed: int = 0,
    stages: Sequence[str] | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | threading.Event | None = None,
    method_params: Mapping[str, Any] | None = None,
    **params: Any,
) -> SanityResult:
    """Randomise blocks from the output down, cumulatively, on a copy; the map and its similarity per stage.

    The method's parameters come as keywords, or in `method_params` (which may hold the method's own `seed`;
    `seed` here seeds the randomisation)."""
    params = {**(method_params or {}), **params}
    return _run("cascading", model, x, target, method, seed, stages, progress, cancel, params)


def independent_randomization(
    model: LoadedModel | nn.Module,
    x: torch.Tensor,
    target: Target | int | None,
    method: str,
    *,
    seed: int = 0,
    stages: Sequence[str] | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | threading.Event | None = None,
    method_params: Mapping[str, Any] | None = None,
    **params: Any,
) -> SanityResult:
    """Randomise one block at a time (the others keep their trained weights), on a copy."""
    params = {**(method_params or {}), **params}
    return _run("independent", model, x, target, method, seed, stages, progress, cancel, params)


def random_logit(
    model: LoadedModel | nn.Module,
    x: torch.Tensor,
    target: Target | int | None,
    method: str,
    seed: int = 0,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelFn | threading.Event | None = None,
    method_params: Mapping[str, Any] | None = None,
    **params: Any,
) -> RandomLogitResult:
    """The map for the target against the map for a random other class (classification only).

    `seed` picks the other class; the method's own parameters (its `seed` too) may come in `method_params`."""
    params = {**(method_params or {}), **params}
    lm = resolve_model(model)
    x = check_input(lm, x)
    tgt = resolve_target(lm, x, target)
    output = lm.engine.forward(lm, x)
    if not isinstance(tgt, ClassTarget) or not (isinstance(output, torch.Tensor) and output.ndim == 2):
        raise InvalidParameter("The random-logit test needs a classification model and a class target.")
    classes = int(output.shape[1])
    if classes < 2:
        raise InvalidParameter("The random-logit test needs a model with at least two classes.")
    others = [c for c in range(classes) if c != tgt.index]
    index = others[int(np.random.default_rng(checked_seed(seed)).integers(len(others)))]
    names = lm.categories
    other = ClassTarget(index, label=names[index] if index < len(names) else "")
    maps = []
    for k, t in enumerate((tgt, other)):
        part = sub_progress(progress, k / 2, (k + 1) / 2)
        maps.append(lm.engine.attribute(lm, x, method, t, progress=part, cancel=cancel, **params).map)
    rho, ssim = similarity(maps[0], maps[1])
    return RandomLogitResult(method, tgt, other, maps, rho, ssim)


def _run(
    kind: str,
    model: LoadedModel | nn.Module,
    x: torch.Tensor,
    target: Target | int | None,
    method: str,
    seed: int,
    stages: Sequence[str] | None,
    progress: ProgressFn | None,
    cancel: CancelFn | threading.Event | None,
    params: dict[str, Any],
) -> SanityResult:
    lm = resolve_model(model)
    x = check_input(lm, x)
    seed = checked_seed(seed)
    names = _stages(stages) if stages is not None else default_stages(lm.module)
    if not names:
        raise InvalidParameter("The model has no learnable blocks to randomise.")
    for name in names:
        get_layer(lm.module, name)  # a clear error for a wrong name
    tgt = resolve_target(lm, x, target)
    total = len(names) + 1
    step(progress, cancel, 0.0, "Original map")
    original = lm.engine.attribute(
        lm, x, method, tgt, progress=sub_progress(progress, 0, 1 / total), cancel=cancel, **params
    ).map
    clone = _copy_module(lm)
    derived = lm.with_module(clone, f"{kind}-randomized")
    pristine = {k: v.clone() for k, v in clone.state_dict().items()} if kind == "independent" else None
    maps, rhos, ssims = [original], [1.0], [1.0]
    for k, name in enumerate(names, start=1):
        step(progress, cancel, k / total, f"Randomising {name}")
        if pristine is not None:
            clone.load_state_dict(pristine)
        randomize_(clone.get_submodule(name), seed * 1009 + k)
        found = derived.engine.attribute(
            derived,
            x,
            method,
            tgt,
            progress=sub_progress(progress, k / total, (k + 1) / total),
            cancel=cancel,
            use_cache=False,
            **params,
        ).map
        rho, ssim = similarity(original, found)
        maps.append(found)
        rhos.append(rho)
        ssims.append(ssim)
    step(progress, cancel, 1.0, "Done")
    return SanityResult(kind, method, ["original", *names], maps, rhos, ssims, dict(params))


def _stages(stages: Sequence[str] | str) -> list[str]:
    """Layer names to randomise, each once: every stage is a whole attribution, so a repeated name would
    only repeat work (and a long list of repeats could run for ever)."""
    names = [stages] if isinstance(stages, str) else list(stages)
    if not all(isinstance(n, str) and n for n in names):
        raise InvalidParameter("Stages must be layer names (text), e.g. ['layer4', 'layer3'].")
    repeated = sorted(n for n, k in Counter(names).items() if k > 1)
    if repeated:
        raise InvalidParameter(
            f"Each stage is randomised once; listed more than once: {', '.join(repeated)}."
        )
    return names


def _copy_module(model: LoadedModel) -> nn.Module:
    """A deep copy of the model's module, made under its lock so no other run's hooks are copied."""
    with model.lock:
        clone = copy.deepcopy(model.module)
    for sub in clone.modules():  # defensive: a copy never carries hooks
        sub._forward_hooks.clear()
        sub._forward_pre_hooks.clear()
        sub._backward_hooks.clear()
    return clone.eval()


def _learnable(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())
