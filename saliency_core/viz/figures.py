"""Interactive plotly figures: a saliency heatmap with raw values on hover, and a labelled matrix. plotly is
imported only when a figure is built."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from .colormaps import plotly_colorscale
from .maps import as_map, normalise, resize_map, to_numpy

if TYPE_CHECKING:
    import plotly.graph_objects as go


def heatmap_figure(
    saliency: Any,
    map01: Any | None = None,
    cmap: str = "inferno",
    title: str = "",
    height: int | None = 420,
    zrange: tuple[float, float] = (0.0, 1.0),
    max_side: int | None = None,
    fill_height: bool = False,
) -> go.Figure:
    """An interactive heatmap: colours from the display map, hover showing the raw and normalised values.

    `saliency` is the raw (signed) map; `map01` what is displayed (default: `normalise(saliency)`), on the
    colour range `zrange` (e.g. (-1, 1) for a difference of two maps). With `max_side` a larger map is
    averaged down to that side (hover then names the cell's centre in input pixels), which keeps the
    figure small. With `fill_height` the square plot takes the figure's whole height and the colorbar is
    exactly as tall (for a figure at least as wide as it is tall); `height=None` leaves the height to the
    page.
    """
    import plotly.graph_objects as go

    raw = as_map(saliency)
    shown = as_map(map01) if map01 is not None else normalise(raw)
    if shown.shape != raw.shape:
        shown = resize_map(shown, raw.shape)
    rows, cols = raw.shape
    xs, ys = np.arange(cols, dtype=np.float64), np.arange(rows, dtype=np.float64)
    if max_side and max(rows, cols) > max_side:
        factor = max(rows, cols) / float(max_side)
        size = (max(1, round(cols / factor)), max(1, round(rows / factor)))
        raw = cv2.resize(raw, size, interpolation=cv2.INTER_AREA)
        shown = cv2.resize(shown.astype(np.float32), size, interpolation=cv2.INTER_AREA)
        xs = np.round((np.arange(size[0]) + 0.5) * cols / size[0] - 0.5, 1)
        ys = np.round((np.arange(size[1]) + 0.5) * rows / size[1] - 0.5, 1)
    colorbar = {"thickness": 10, "len": 1.0 if fill_height else 0.9, "outlinewidth": 0}
    figure = go.Figure(
        go.Heatmap(
            z=shown,
            x=xs,
            y=ys,
            customdata=raw,
            zmin=float(zrange[0]),
            zmax=float(zrange[1]),
            colorscale=plotly_colorscale(cmap),
            colorbar={**colorbar, "tickfont": {"size": 10}},
            hovertemplate="x %{x}, y %{y}<br>value %{customdata:.4g}<br>shown %{z:.2f}<extra></extra>",
        )
    )
    # fill_height: only x gives up room to keep the square, so the plot spans the height like its colorbar
    figure.update_yaxes(
        autorange="reversed",
        scaleanchor="x",
        constrain="range" if fill_height else "domain",
        showticklabels=False,
        showgrid=False,
    )
    figure.update_xaxes(constrain="domain", showticklabels=False, showgrid=False)
    figure.update_layout(
        title={"text": title} if title else None,
        height=height,
        margin={"l": 0, "r": 0, "t": 32 if title else 0, "b": 0},
    )
    return figure


def matrix_figure(
    matrix: Any,
    names: Sequence[str],
    title: str = "",
    zmin: float = -1.0,
    zmax: float = 1.0,
    cmap: str = "coolwarm",
    height: int = 420,
) -> go.Figure:
    """A labelled square matrix (e.g. agreement between maps) with each value written in its cell."""
    import plotly.graph_objects as go

    values = to_numpy(matrix)
    labels = list(names)
    text = [[f"{v:.2f}" if np.isfinite(v) else "–" for v in row] for row in values]
    # Cells sit at integer positions with the names as tick text: plotly merges equal category names into
    # one row and column, so two maps labelled alike would collapse the matrix into one cell.
    positions = list(range(len(labels)))
    pairs = [[[a, b] for b in labels] for a in labels]
    figure = go.Figure(
        go.Heatmap(
            z=values,
            x=positions,
            y=positions,
            zmin=zmin,
            zmax=zmax,
            colorscale=plotly_colorscale(cmap),
            text=text,
            customdata=pairs,
            texttemplate="%{text}",
            hovertemplate="%{customdata[0]} vs %{customdata[1]}: %{z:.3f}<extra></extra>",
            colorbar={"thickness": 12},
        )
    )
    axis = {"tickmode": "array", "tickvals": positions, "ticktext": labels}
    figure.update_xaxes(**axis)
    figure.update_yaxes(autorange="reversed", **axis)
    figure.update_layout(
        title={"text": title} if title else None,
        height=height,
        margin={"l": 8, "r": 8, "t": 36 if title else 8, "b": 8},
    )
    return figure
