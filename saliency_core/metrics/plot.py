"""Plotly figures of deletion/insertion curves and sanity-check similarities (imported lazily)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .deletion_insertion import Curve
from .sanity import SanityResult


def curves_figure(
    curves: Mapping[str, Curve] | Sequence[Curve],
    reference: Curve | None = None,
    title: str | None = None,
) -> Any:
    """Several methods' curves of one kind on one chart (AUC in the legend), the random-order curve dashed."""
    import plotly.graph_objects as go

    items = list(curves.items()) if isinstance(curves, Mapping) else [(c.label or c.kind, c) for c in curves]
    fig = go.Figure()
    for name, curve in items:
        fig.add_trace(
            go.Scatter(x=curve.fractions, y=curve.scores, mode="lines", name=f"{name} (AUC {curve.auc:.3f})")
        )
    if reference is not None:
        fig.add_trace(
            go.Scatter(
                x=reference.fractions,
                y=reference.scores,
                mode="lines",
                name=f"random order (AUC {reference.auc:.3f})",
                line={"dash": "dash", "color": "gray"},
            )
        )
    kind = items[0][1].kind if items else (reference.kind if reference else "deletion")
    verb = "removed" if kind == "deletion" else "inserted"
    fig.update_layout(
        title=title or f"{kind.capitalize()} curve",
        xaxis_title=f"fraction of pixels {verb}",
        yaxis_title="score of the target",
        xaxis_range=[0, 1],
        legend={"orientation": "h", "y": -0.25},
        margin={"l": 40, "r": 10, "t": 40, "b": 10},
    )
    return fig


def sanity_figure(result: SanityResult, title: str | None = None) -> Any:
    """Spearman and SSIM to the original map at each randomisation stage."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(go.Scatter(x=result.stages, y=result.spearman, mode="lines+markers", name="Spearman |map|"))
    fig.add_trace(go.Scatter(x=result.stages, y=result.ssim, mode="lines+markers", name="SSIM"))
    fig.update_layout(
        title=title or f"{result.kind.capitalize()} randomisation: {result.method}",
        xaxis_title="randomised up to" if result.kind == "cascading" else "randomised block",
        yaxis_title="similarity to the original map",
        yaxis_range=[-1.05, 1.05],
        margin={"l": 40, "r": 10, "t": 40, "b": 10},
    )
    return fig
