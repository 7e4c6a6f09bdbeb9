"""One UI module per task: how its target picker is titled and labelled, what it draws, its size
defaults and its share-link fields. `get(task)` finds a task's module; a task without one (from a plugin)
gets the generic `TaskUI`, which treats its predictions like a classifier's."""

from __future__ import annotations

from pathlib import Path

from saliency_core.plugins import import_submodules

from .base import TaskUI, register


def _discover() -> None:
    # Every module of this package is a task's UI: a new task is one new file here.
    import_submodules(__package__, Path(__file__).parent)


def get(task: str) -> TaskUI:
    """The UI of a task (the generic one when the task has no module of its own)."""
    _discover()
    from .base import _REGISTRY

    return _REGISTRY.get(task) or TaskUI()


def per_base_keys() -> tuple[str, ...]:
    """Session keys of every task's refining pickers (reset when the image or model changes)."""
    _discover()
    from .base import _REGISTRY

    return tuple(dict.fromkeys(k for ui in _REGISTRY.values() for k in ui.per_base_keys))


__all__ = ["TaskUI", "get", "per_base_keys", "register"]
