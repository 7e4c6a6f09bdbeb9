"""One UI module per task: how its target picker is titled and labelled, what it draws, its size
defaults and its share-link fields. `get(task)` finds a task's module; a task without one (from a plugin)
gets the generic `TaskUI`, which treats its predictions like a classifier's."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from .base import TaskUI, register

_discovered = False


def _discover() -> None:
    # Every module of this package is a task's UI: a new task is one new file here.
    global _discovered
    if _discovered:
        return
    for found in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if found.name != "base":
            importlib.import_module(f"{__package__}.{found.name}")
    _discovered = True


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
