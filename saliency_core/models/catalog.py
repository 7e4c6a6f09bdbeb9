"""Importing this module registers every model the project knows."""

from __future__ import annotations

from . import classification, detection, segmentation, u2net  # noqa: F401
