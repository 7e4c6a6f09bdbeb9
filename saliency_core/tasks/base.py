"""The adapter interface every task implements, and the lookup by task name."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..plugins import import_submodules
from ..targets import Target

if TYPE_CHECKING:
    from ..models.loaded import LoadedModel


class TaskAdapter:
    """Calls a task's model and turns its output into predictions (targets, best first)."""

    task = "classification"
    # Whether targets take something from the unperturbed output (a predicted region) before a method runs.
    binds_targets = True
    # The kinds of target this task explains (checked before a method runs, for a clear message).
    target_types: tuple[type, ...] = (Target,)
    # Inputs keep the image's size (up to 640 px for detectors): perturbation methods scale their
    # patch, cell and mask counts to it (see `MethodSpec.size_defaults`) instead of the 224-px defaults.
    scaled_defaults = False
    # Each pass runs a whole detector on the full image: perturbation methods make fewer of them.
    heavy_passes = False

    def forward(self, module: nn.Module, x: torch.Tensor) -> Any:
        """The model output in the task's canonical form (what targets are called with)."""
        return module(x)

    def predict(self, model: LoadedModel, output: Any, top_k: int, threshold: float) -> list[Target]:
        raise NotImplementedError

    def perturbation_score(self, target: Target, output: Any) -> torch.Tensor:
        """Score of perturbed images for occlusion/RISE; by default the target's own score."""
        return target(output)

    def faithfulness_score(self, target: Target, output: Any) -> torch.Tensor:
        """Score tracked by deletion/insertion curves; by default the perturbation score."""
        return self.perturbation_score(target, output)


_ADAPTERS: dict[str, type[TaskAdapter]] = {}


def register_adapter(cls: type[TaskAdapter]) -> type[TaskAdapter]:
    """Class decorator: make an adapter available under its task name."""
    _ADAPTERS[cls.task] = cls
    return cls


def _discover() -> None:
    # Every module of this package is a task: a new task is one new file here (plugins may add more).
    import_submodules(__package__, Path(__file__).parent)


def get_adapter(task: str) -> TaskAdapter:
    _discover()
    if task not in _ADAPTERS:
        raise ValueError(f"No adapter for task '{task}'.")
    return _ADAPTERS[task]()


def list_tasks() -> list[str]:
    """The task names with an adapter, classification first."""
    _discover()
    return sorted(_ADAPTERS, key=lambda t: (t != "classification", t))
