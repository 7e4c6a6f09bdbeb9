"""Attribution methods, one file per family; `list_methods()` describes them for the UI."""

from __future__ import annotations

from .base import FAMILIES, FAMILY_TITLES, MethodInfo, MethodSpec, Param, get_method, list_methods

__all__ = ["FAMILIES", "FAMILY_TITLES", "MethodInfo", "MethodSpec", "Param", "get_method", "list_methods"]
