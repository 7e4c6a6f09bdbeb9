"""Choosing methods to show side by side (Compare) or to evaluate (Evaluate): a multiselect of the task's
methods, each with the parameters last set for it on the Explore page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import streamlit as st

import saliency_core as sc
from ui import params, resources, results
from ui.layers import choices as layer_choices
from ui.view import View


@dataclass(frozen=True)
class Variant:
    """One map to make: a method with its parameters, and how to label it."""

    label: str
    info: sc.MethodInfo
    params: dict[str, Any]
    view: View | None = None  # its own view (another target), else the page's

    def view_or(self, page_view: View) -> View:
        return self.view if self.view is not None else page_view


def explored_methods(view: View, ids: Sequence[str]) -> list[str]:
    """Methods this session already ran on the current image, model and target (most recent last)."""
    found: list[str] = []
    for key, result in results.store().matching(view.base_key()):
        target = key[3]
        if result.method in ids and target in ((), view.target_key()) and result.method not in found:
            found.append(result.method)
    return found


def choose_methods(
    view: View,
    key: str,
    defaults: Sequence[str],
    limit: int,
    label: str = "Methods",
    help: str | None = None,
) -> list[Variant]:
    """A multiselect of the task's methods under `key`, at most `limit`; returns them as variants.

    It starts on the methods explored on this view (when at least two), else on `defaults`. Each method
    uses the parameters last set for it on Explore (defaults otherwise).
    """
    infos = resources.methods(view.model)
    by_id = {m.id: m for m in infos}
    if not isinstance(st.session_state.get(key), list):
        explored = explored_methods(view, list(by_id))
        first = explored[-limit:] if len(explored) >= 2 else [m for m in defaults if m in by_id]
        st.session_state[key] = first
    st.session_state[key] = [m for m in st.session_state[key] if m in by_id]
    chosen = st.multiselect(
        label,
        list(by_id),
        key=key,
        format_func=lambda i: f"{by_id[i].title} ({resources.family_title(by_id[i].family)})",
        max_selections=limit,
        help=help,
    )
    layers = layer_choices(view)
    return [Variant(by_id[m].title, by_id[m], params.values(by_id[m], layers, view)) for m in chosen]
