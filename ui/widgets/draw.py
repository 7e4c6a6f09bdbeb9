"""Drawing a box or a free-form region on the picture: a plotly chart whose box and lasso selections
(`st.plotly_chart(on_select=...)`) become input-pixel boxes and masks.

Coordinates are pixel edges: the image is placed so that pixel (row r, column c) covers x in [c, c+1]
and y in [r, r+1], so a selection from x=10 to x=50 is the box (10, ·, 50, ·) with x1 exclusive, as
everywhere else in the dashboard. A lasso's mask holds the pixels whose centres lie inside its polygon.
The conversions are pure functions (no Streamlit, no torch), tested with known answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

Box = tuple[int, int, int, int]
MIN_SIDE = 2  # a box narrower than this (pixels) is a click or a slip, not a region
GRID_POINTS = 64  # invisible points per side that make every selection report itself (see figure())


class BadSelection(ValueError):
    """A selection that gives no usable region (empty, outside the picture, too thin); says why."""


def selection_box(box: Mapping[str, Any], size: tuple[int, int]) -> Box:
    """A plotly box selection ({"x": [a, b], "y": [c, d]}) as (x0, y0, x1, y1) in input pixels, clamped to
    the picture of `size` (height, width); BadSelection when nothing usable is left."""
    height, width = size
    try:
        xs = [float(v) for v in box["x"]]
        ys = [float(v) for v in box["y"]]
    except (KeyError, TypeError, ValueError):
        raise BadSelection("The selection has no coordinates; drag a box on the picture.") from None
    if len(xs) != 2 or len(ys) != 2 or not np.all(np.isfinite(xs + ys)):
        raise BadSelection("The selection has no coordinates; drag a box on the picture.")
    x0, x1 = (round(min(max(v, 0.0), width)) for v in sorted(xs))
    y0, y1 = (round(min(max(v, 0.0), height)) for v in sorted(ys))
    if x1 - x0 < MIN_SIDE or y1 - y0 < MIN_SIDE:
        raise BadSelection(
            f"The box drawn is {x1 - x0}×{y1 - y0} pixels inside the picture: drag a larger box over it."
        )
    return x0, y0, x1, y1


def polygon_mask(xs: Sequence[float], ys: Sequence[float], size: tuple[int, int]) -> np.ndarray:
    """A bool mask [H, W] of the pixels whose centres (c + 0.5, r + 0.5) lie inside the polygon (even-odd
    rule); BadSelection for fewer than three points or a polygon that holds no pixel of the picture."""
    height, width = size
    px = np.asarray(xs, dtype=np.float64)
    py = np.asarray(ys, dtype=np.float64)
    if px.shape != py.shape or px.ndim != 1 or len(px) < 3 or not np.all(np.isfinite(px) & np.isfinite(py)):
        raise BadSelection("A lasso needs at least three points: draw around the region.")
    cx = np.arange(width, dtype=np.float64)[None, :] + 0.5
    cy = np.arange(height, dtype=np.float64)[:, None] + 0.5
    inside = np.zeros((height, width), dtype=bool)
    # Even-odd rule, one polygon edge at a time: cheap for the few hundred points of a hand-drawn lasso.
    for ax, ay, bx, by in zip(px, py, np.roll(px, 1), np.roll(py, 1)):
        if ay == by:
            continue
        crosses = (ay > cy) != (by > cy)
        at_x = ax + (cy - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (cx < at_x)
    if not inside.any():
        raise BadSelection("The region drawn holds no pixel of the picture: draw around a larger area.")
    return inside


def mask_box(mask: np.ndarray) -> Box:
    """The smallest box (x0, y0, x1, y1), x1 and y1 exclusive, around a non-empty mask."""
    rows, cols = np.nonzero(mask)
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


def read_selection(
    selection: Mapping[str, Any] | None, size: tuple[int, int]
) -> tuple[str, Box, np.ndarray | None] | None:
    """The last shape of a chart's selection state: ("box", box, None) or ("lasso", its bounding box, mask);
    None when nothing is selected; BadSelection for a shape that gives no region."""
    found = (selection or {}).get("selection") or {}
    lassos = list(found.get("lasso") or [])
    boxes = list(found.get("box") or [])
    if lassos:
        mask = polygon_mask(lassos[-1].get("x") or [], lassos[-1].get("y") or [], size)
        return "lasso", mask_box(mask), mask
    if boxes:
        return "box", selection_box(boxes[-1], size), None
    return None


def selection_signature(selection: Mapping[str, Any] | None) -> str:
    """What a selection's shapes are, to tell a new drawing from the one already applied."""
    found = (selection or {}).get("selection") or {}
    return repr((found.get("box") or [], found.get("lasso") or []))


def new_drawing(
    selection: Mapping[str, Any] | None, seen: str | None, size: tuple[int, int]
) -> tuple[str, tuple[str, Box, np.ndarray | None] | None, str]:
    """(signature, the shape drawn, problem) of a chart's selection state: the shape only when the selection
    differs from the one `seen` (its signature) last run, so a drawing is applied once and typed numbers
    win afterwards; a problem ("") for a drawing that gives no region."""
    signature = selection_signature(selection)
    if signature == seen:
        return signature, None, ""
    try:
        return signature, read_selection(selection, size), ""
    except BadSelection as exc:
        return signature, None, str(exc)


def figure(picture: np.ndarray, box: Box | None = None, *, height: int = 420) -> Any:
    """The picture as a plotly figure in pixel-edge coordinates, ready for box selection (the default drag),
    with `box` outlined. A grid of invisible points covers it: plotly reports a selection only when it holds
    a point, and the hover then shows where the pointer is."""
    import plotly.graph_objects as go  # here: only the pages that draw pay for importing plotly

    h, w = picture.shape[:2]
    step = max(1.0, max(h, w) / GRID_POINTS)
    gx, gy = np.meshgrid(np.arange(step / 2, w, step), np.arange(step / 2, h, step))
    fig = go.Figure(
        [
            go.Image(z=picture, x0=0.5, y0=0.5, dx=1, dy=1, hoverinfo="skip"),
            go.Scatter(
                x=gx.ravel(),
                y=gy.ravel(),
                mode="markers",
                marker={"size": 4, "opacity": 0},
                selected={"marker": {"opacity": 0}},
                unselected={"marker": {"opacity": 0}},
                hovertemplate="x %{x:.0f}, y %{y:.0f}<extra></extra>",
                showlegend=False,
            ),
        ]
    )
    if box is not None:
        x0, y0, x1, y1 = box
        fig.add_shape(type="rect", x0=x0, y0=y0, x1=x1, y1=y1, line={"color": "#00c8ff", "width": 2})
    fig.update_xaxes(range=[0, w], showgrid=False, zeroline=False, constrain="domain")
    fig.update_yaxes(
        range=[h, 0], showgrid=False, zeroline=False, scaleanchor="x", scaleratio=1, constrain="domain"
    )
    fig.update_layout(
        dragmode="select",
        height=height,
        margin={"l": 30, "r": 10, "t": 10, "b": 30},
        newselection={"line": {"color": "#00c8ff", "width": 2, "dash": "dot"}},
        uirevision="draw",  # keep the drawn selection when the figure is rebuilt
    )
    return fig


def draw(
    picture: np.ndarray,
    key: str,
    box: Box | None = None,
    *,
    modes: tuple[str, ...] = ("box", "lasso"),
    height: int = 420,
) -> Any:
    """Show the picture for drawing; returns the chart's selection state (see `read_selection`)."""
    import streamlit as st

    return st.plotly_chart(
        figure(picture, box, height=height),
        key=key,
        on_select="rerun",
        selection_mode=modes,
        config={"displaylogo": False, "modeBarButtonsToRemove": ["zoom", "pan", "autoScale", "resetScale"]},
    )
