"""The evaluations of a view as the export card's `metrics` field, and the Evaluate page's download.

`metrics_for(view)` gathers what this session evaluated for the view (image, model, weights, target);
with a `result` it keeps only what concerns that map, which is how the Explore page's card gets its metrics.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

import saliency_core as sc
from ui import display, export, resources, results
from ui import evaluate_common as common
from ui.evaluate_common import ActMaxEntry, CurveEntry, EvalStore, PointingEntry, SanityEntry
from ui.results import Result
from ui.view import View


def _matches(entry: Any, result: Result | None) -> bool:
    return result is None or (
        entry.method == result.method and common.same_params(entry.params, result.params)
    )


def metrics_for(
    view: View, result: Result | None = None, evaluations: EvalStore | None = None
) -> dict[str, Any]:
    """JSON-ready metrics of the view (of one map of it when `result` is given); {} when there are none."""
    found = evaluations if evaluations is not None else common.store()
    prefix = common.view_key(view)
    curves, sanity = [], []
    used_settings = set()
    for key, entry in found.matching(("curve", *prefix)):
        if isinstance(entry, CurveEntry) and entry.method != "random" and _matches(entry, result):
            curves.append(entry.card())
            used_settings.add(key[-2:])  # (steps, substrate)
    for key, entry in found.matching(("curve", *prefix)):
        if isinstance(entry, CurveEntry) and entry.method == "random" and key[-2:] in used_settings:
            curves.append(entry.card())
    pointing = found.get(("pointing", *prefix))
    if isinstance(pointing, PointingEntry):
        rows = [r for r in pointing.rows if _matches(r, result)]
        pointing = pointing.card(rows) if rows else None
    for _, entry in found.matching(("sanity", *prefix)):
        if isinstance(entry, SanityEntry) and _matches(entry, result):
            sanity.append(entry.card())
    actmax = None
    if result is None:
        runs = [
            e
            for k, e in found.matching(("actmax", view.info.id, view.weights))
            if k[3] in (None, view.image.digest)  # from noise, or from this image
        ]
        actmax = [e.card() for e in runs if isinstance(e, ActMaxEntry)] or None
    return sc.metrics.card_metrics(
        faithfulness=curves or None,
        pointing=pointing,
        sanity=sanity or None,
        activation_maximization=actmax,
    )


def maps_of(view: View, evaluations: EvalStore | None = None) -> tuple[list[Result], list[str]]:
    """The maps the view's evaluations used (as stored in the session), and their labels."""
    found = evaluations if evaluations is not None else common.store()
    prefix = common.view_key(view)
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
