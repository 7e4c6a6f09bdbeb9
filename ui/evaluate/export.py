"""The Evaluate page's export: the JSON card of everything evaluated for the view, with the maps it used.

The card's `metrics` field comes from `ui.cards.metrics_for`, which the Explore page's card uses too.
"""

from __future__ import annotations

import streamlit as st

from ui import cards, display, export, resources, results
from ui.cards import PointingEntry, metrics_for
from ui.results import Result
from ui.store import SessionStore
from ui.view import View


def maps_of(view: View, evaluations: SessionStore | None = None) -> tuple[list[Result], list[str]]:
    """The maps the view's evaluations used (as stored in the session), and their labels."""
    found = evaluations if evaluations is not None else cards.store()
    prefix = cards.view_key(view)
    wanted: dict[tuple, str] = {}
    entries = [e for _, e in found.matching(("curve", *prefix)) if e.method != "random"]
    pointing = found.get(("pointing", *prefix))
    entries += list(pointing.rows) if isinstance(pointing, PointingEntry) else []
    out, labels = [], []
    for entry in entries:
        info = resources.method(entry.method)
        if info is None:
            continue
        key = results.request_key(view, info, entry.params)
        stored = results.store().get(key)
        if stored is not None and key not in wanted:
            wanted[key] = entry.label
            out.append(stored)
            labels.append(entry.label)
    return out, labels


def section(view: View) -> None:
    """The JSON card of everything evaluated for this view, and a look at its metrics."""
    metrics = metrics_for(view)
    maps, labels = maps_of(view)
    if metrics:
        st.caption(
            "The card holds the image's SHA-256, the model and weights, the target, how each map was made and "
            f"the metrics computed here for this view: **{', '.join(metrics)}**."
        )
    else:
        st.caption("Nothing evaluated for this image, model and target yet: run a section above.")
    content = export.card(view, maps, display.current(), labels, metrics=metrics, page="evaluate")
    st.download_button(
        "JSON card with the metrics",
        export.card_bytes(content),
        file_name=f"{export.file_stem(view)}_evaluate.json",
        mime="application/json",
        icon=":material/description:",
        on_click="ignore",
        disabled=not metrics,
    )
    if metrics:
        with st.expander("The card's metrics", icon=":material/data_object:"):
            st.json(metrics, expanded=1)
