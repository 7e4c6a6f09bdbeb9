"""Computing and showing what Compare chose: the grid, the agreement matrices, the difference view and
the exports."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import streamlit as st

import saliency_core as sc
from saliency_core import viz
from ui import display, export, results, state
from ui.display import Display
from ui.results import Result
from ui.text import md
from ui.view import View
from ui.widgets.variants import Variant

AUTO_RUN_SECONDS = 3.0


# --- computing -------------------------------------------------------------------------------------------
def compute(view: View, variants: Sequence[Variant]) -> list[Result | None]:
    """Stored results of the variants; the missing ones computed when asked (or when cheap).

    Without a target (nothing detected, an empty region) only model-free variants are computed; the
    others come back as None. A variant with its own view (another target) is computed on that view.
    """
    missing_target = view.missing_target()
    if missing_target and any(v.info.needs_target and v.view is None for v in variants):
        st.warning(
            f"{md(missing_target, limit=None)} Only model-free methods can be shown.",
            icon=":material/search_off:",
        )
        kept = [v for v in variants if not v.info.needs_target]
        found = iter(compute(view, kept) if kept else [])
        return [None if v.info.needs_target else next(found) for v in variants]
    keys = tuple(results.request_key(v.view_or(view), v.info, v.params) for v in variants)
    stored = [results.store().get(k) for k in keys]
    missing = [v for v, r in zip(variants, stored) if r is None]
    if not missing:
        return stored
    texts = []
    for v in missing:
        cost = results.estimate_text(v.view_or(view), v.info, v.params)[0]
        line = f"- **{md(v.label)}**: {md(cost, limit=None)}"
        slow = results.cost_warning(v.view_or(view), v.info, v.params)
        texts.append(f"{line}  \n  :orange[{slow}]" if slow else line)
    budget = AUTO_RUN_SECONDS / len(missing)
    auto = all(results.is_cheap(v.view_or(view), v.info, v.params, budget) for v in missing)
    box = st.empty()
    with box.container(border=True):
        st.markdown(f"{len(missing)} of {len(variants)} maps still to compute:\n" + "\n".join(texts))
        st.button(
            f"Compute {len(missing)} map{'s' if len(missing) > 1 else ''}",
            key=f"{state.ACTION_PREFIX}compare.run",
            type="primary",
            icon=":material/play_arrow:",
            on_click=results.request,
            args=(state.COMPARE_PENDING, keys),
        )
    if not results.should_run(state.COMPARE_PENDING, keys, auto):
        return stored
    st.session_state[state.COMPARE_PENDING] = keys
    jobs = [(v.label, v.info, v.params, v.view_or(view)) for v in variants]
    display.ensure_defaults()
    draw = display.preview_drawer(view, display.current(), {v.label: v.info.id for v in variants})
    done = results.run_with_progress(view, jobs, state.COMPARE_PENDING, draw)
    if all(r is not None for r in done):
        box.empty()
    return done


# --- showing ---------------------------------------------------------------------------------------------
def scales(done: Sequence[Result], shown: Display) -> list[float | None]:
    """Per-map scales: None (each its own range) or one shared scale for all."""
    if not shown.shared:
        return [None] * len(done)
    common = max((viz.map_scale(r.map, shown.sign_for(r.method), shown.clip) for r in done), default=0.0)
    return [common] * len(done)


def tiles(
    view: View,
    done: Sequence[Result],
    shown: Display,
    overlay: bool,
    views: Sequence[View | None] | None = None,
) -> list[np.ndarray]:
    """The maps as pictures; `views`: each map's own view (another target), outlined on its tile."""
    out = []
    for i, (result, scale) in enumerate(zip(done, scales(done, shown))):
        own = (views[i] if views is not None else None) or view
        if overlay:
            picture = display.overlay(own, result, shown, scale)
            box = getattr(own.target, "box", None)
            if box is not None:  # the explained detection (or person), outlined on every tile
                picture = viz.draw_boxes(picture, [box], colors=[(255, 255, 255)], thickness=2)
            out.append(picture)
        else:
            out.append(viz.apply_colormap(display.map01(result, shown, scale), shown.cmap_for(result.method)))
    return out


def grid(
    view: View,
    labels: Sequence[str],
    done: Sequence[Result],
    shown: Display,
    overlay: bool,
    views: Sequence[View | None] | None = None,
) -> None:
    columns = st.columns(max(3, min(4, len(done))))
    pictures = tiles(view, done, shown, overlay, views)
    for i, (label, result, picture) in enumerate(zip(labels, done, pictures)):
        with columns[i % len(columns)]:
            st.image(picture, caption=label, width="stretch")
            source = "cache" if result.engine_cached else results.format_seconds(result.seconds)
            st.caption(f"{source} · {result.forward_passes}F/{result.backward_passes}B passes")


def agreement_section(labels: Sequence[str], done: Sequence[Result]) -> sc.metrics.Agreement | None:
    """Spearman and SSIM between every pair of maps, as two labelled matrices."""
    if len(done) < 2:
        st.caption("Choose at least two maps to see how much they agree.")
        return None
    try:
        found = sc.metrics.agreement({label: r.map for label, r in zip(labels, done)})
    except sc.SaliencyError as exc:
        st.warning(f"Agreement cannot be computed: {md(exc, limit=None)}")
        return None
    left, right = st.columns(2)
    common, short = short_labels(found.names)
    if common:
        st.caption(f"All maps: {md(common.strip(' ·='))}; the matrices name what differs.")
    left.plotly_chart(
        viz.matrix_figure(found.spearman, short, "Spearman rank correlation", height=360),
        config={"displaylogo": False},
    )
    right.plotly_chart(
        viz.matrix_figure(found.ssim, short, "SSIM", height=360),
        config={"displaylogo": False},
    )
    st.caption(
        "Both compare the maps' magnitudes. Spearman: do the maps rank pixels alike (1 = same order)? "
        "SSIM: do they look alike, structure by structure (1 = identical)?"
    )
    return found


SEPARATORS = (" · ", "=", ", ")


def short_labels(labels: Sequence[str], limit: int = 22) -> tuple[str, list[str]]:
    """(what every label starts with, distinct short labels for matrix axes).

    The shared start ("Grad-CAM · layer=") is cut at a separator, long rest shortened in the middle (layer
    names differ in the middle as often as at the end), and labels still alike numbered, so no two maps
    ever share an axis label.
    """
    names = list(labels)
    common = _common_start(names) if len(names) > 1 else ""
    rest = [n[len(common) :] or n for n in names]
    short = [r if len(r) <= limit else r[: (limit - 1) // 2] + "…" + r[-(limit // 2) :] for r in rest]
    seen: dict[str, int] = {}
    for s in short:
        seen[s] = seen.get(s, 0) + 1
    counts: dict[str, int] = {}
    out = []
    for s in short:
        if seen[s] > 1:
            counts[s] = counts.get(s, 0) + 1
            s = f"{s} ({counts[s]})"
        out.append(s)
    return common, out


def _common_start(names: Sequence[str]) -> str:
    """The longest start shared by all names that ends with a separator ("" if none)."""
    prefix = names[0]
    for name in names[1:]:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    ends = [prefix.rfind(sep) + len(sep) for sep in SEPARATORS if sep in prefix]
    cut = max(ends, default=0)
    return prefix[:cut]


def difference_section(view: View, labels: Sequence[str], done: Sequence[Result], shown: Display) -> None:
    """Two maps (as displayed) and their difference on a diverging scale."""
    if len(done) < 2:
        return
    index = list(range(len(done)))
    key_a, key_b = state.COMPARE_DIFF_A, state.COMPARE_DIFF_B
    state.default(key_a, 0, allowed=index)
    state.default(key_b, 1, allowed=index)
    pick_a, pick_b = st.columns(2)
    a = pick_a.selectbox("Map A", index, key=key_a, format_func=lambda i: labels[i])
    b = pick_b.selectbox("Map B", index, key=key_b, format_func=lambda i: labels[i])
    all_scales = scales(done, shown)
    map_a = display.map01(done[a], shown, all_scales[a])
    map_b = display.map01(done[b], shown, all_scales[b])
    diff = viz.difference(map_a, map_b)
    cols = st.columns([1, 1, 1.3])
    cols[0].image(
        viz.apply_colormap(map_a, shown.cmap_for(done[a].method)), caption=f"A: {labels[a]}", width="stretch"
    )
    cols[1].image(
        viz.apply_colormap(map_b, shown.cmap_for(done[b].method)), caption=f"B: {labels[b]}", width="stretch"
    )
    with cols[2]:
        figure = viz.heatmap_figure(diff, diff, "coolwarm", height=260, zrange=(-1.0, 1.0))
        st.plotly_chart(figure, config={"displaylogo": False})
    st.caption(
        f"A − B of the maps as displayed: red where A is stronger, blue where B is. "
        f"Mean absolute difference {float(np.abs(diff).mean()):.3f}."
    )


def exports(
    view: View,
    labels: Sequence[str],
    done: Sequence[Result],
    shown: Display,
    overlay: bool,
    agreement: sc.metrics.Agreement | None,
    views: Sequence[View | None] | None = None,
) -> None:
    metrics = {"agreement": agreement.as_dict()} if agreement is not None else {}
    content = export.card(view, done, shown, labels, metrics=metrics, page="compare")
    pictures = tiles(view, done, shown, overlay, views)
    export.downloads(
        png=lambda: viz.png_bytes(export.grid_picture([view.picture, *pictures], ["Input", *labels])),
        npz=lambda: export.maps_npz(view, done, shown, labels, content=content),
        content=content,
        stem=f"{export.file_stem(view)}_compare",
        key="compare",
        label="grid",
    )
