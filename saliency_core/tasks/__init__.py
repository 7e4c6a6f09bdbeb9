"""Task adapters: how a task's model is called, what its predictions are, how targets score it."""

from __future__ import annotations

from .base import TaskAdapter, get_adapter, list_tasks, register_adapter

__all__ = ["TaskAdapter", "get_adapter", "list_tasks", "register_adapter"]
