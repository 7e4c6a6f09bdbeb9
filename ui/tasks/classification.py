"""Classification: a ranked list of classes; the generic `TaskUI` describes it."""

from __future__ import annotations

from .base import TaskUI, register


@register
class ClassificationUI(TaskUI):
    task = "classification"
