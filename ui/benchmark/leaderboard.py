"""The leaderboard: per method, each metric's mean and bootstrap 95% interval beside the random-map baseline,
sorted by the chosen metric (best first), and a chart of the means with their intervals."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from saliency_core.dataset import RANDOM
from saliency_core.dataset.metrics import METRICS
from saliency_core.dataset.summary import BETTER
from ui import resources, state
from ui.text import md

TITLES = {
    "deletion": "Deletion AUC",
    "insertion": "Insertion AUC",
    "pointing": "Pointing game",
    "energy_pointing": "Energy pointing",
    "sanity": "Sanity similarity",
}
MEANING = {
    "deletion": "the class score's area under the curve as the most salient pixels are removed first",
    "insertion": "the area as the most salient pixels are put back first, on a blurred image",
    "pointing": "the share of images whose map's peak falls on the object",
    "energy_pointing": "the share of the map's positive mass on the object",
    "sanity": "Spearman similarity to the map after randomising the model's weights",
}
BASELINE = "Random map (baseline)"


def lower_is_better(metric: str) -> bool:
    return BETTER[metric] == "↓"


def direction(metric: str) -> str:
    return "lower is better" if lower_is_better(metric) else "higher is better"


def present(summary: pd.DataFrame) -> list[str]:
    """The metrics some method has a value of (pointing needs masks, sanity a --sanity run)."""
    return [m for m in METRICS if m in summary.columns and summary[m].notna().any()]


def method_title(method: str) -> str:
    if method == RANDOM:
        return BASELINE
    info = resources.method(method)
    return info.title if info is not None else method  # a table from elsewhere may name other methods


def ordered(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Methods best first by `metric` (no value last), then the baseline."""
    methods = summary[~summary["method"].eq(RANDOM)]
    methods = methods.sort_values(
        metric, ascending=lower_is_better(metric), na_position="last", kind="stable"
    )
    return pd.concat([methods, summary[summary["method"].eq(RANDOM)]], ignore_index=True)


def versus_baseline(row: pd.Series, baseline: pd.Series | None, metric: str) -> str:
    """Whether a method's interval lies wholly on the better side of the baseline's mean."""
    if baseline is None or row["method"] == RANDOM:
        return ""
    low, high, base = row[f"{metric}_low"], row[f"{metric}_high"], baseline[metric]
    if any(isinstance(v, float) and math.isnan(v) for v in (low, high, base)):
        return ""
    if lower_is_better(metric):
        is_better, is_worse = high < base, low > base
    else:
        is_better, is_worse = low > base, high < base
    return "better" if is_better else "worse" if is_worse else "not distinguishable"


def table(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The leaderboard as shown: method, images, per present metric its mean and interval, and how the
    chosen metric compares with the baseline."""
    rows = ordered(summary, metric)
    found = rows[rows["method"].eq(RANDOM)]
    baseline = found.iloc[0] if len(found) else None
    out = pd.DataFrame({"Method": [method_title(m) for m in rows["method"]], "Images": rows["images"]})
    # Beside the method, so the comparison that matters is in sight however many metric columns follow.
    out[f"vs. random ({TITLES[metric]})"] = [versus_baseline(r, baseline, metric) for _, r in rows.iterrows()]
    for m in present(summary):
        out[f"{TITLES[m]} {BETTER[m]}"] = rows[m].to_numpy(float)
        out[f"{TITLES[m]} 95% interval"] = [
            "" if math.isnan(lo) else f"[{lo:.3f}, {hi:.3f}]"
            for lo, hi in zip(rows[f"{m}_low"].to_numpy(float), rows[f"{m}_high"].to_numpy(float))
        ]
    return out


def figure(summary: pd.DataFrame, metric: str) -> go.Figure:
    """Means with their 95% intervals as error bars, best first; the baseline's mean as a dashed line."""
    rows = ordered(summary, metric)
    methods = rows[~rows["method"].eq(RANDOM) & rows[metric].notna()]
    mean = methods[metric].to_numpy(float)
    fig = go.Figure(
        go.Scatter(
            x=[method_title(m) for m in methods["method"]],
            y=mean,
            mode="markers",
            marker={"size": 11},
            error_y={
                "type": "data",
                "array": methods[f"{metric}_high"].to_numpy(float) - mean,
                "arrayminus": mean - methods[f"{metric}_low"].to_numpy(float),
            },
            name="mean, 95% interval",
            hovertemplate="%{x}: %{y:.3f}<extra></extra>",
        )
    )
    base = rows[rows["method"].eq(RANDOM)]
    if len(base) and not math.isnan(float(base[metric].iloc[0])):
        value = float(base[metric].iloc[0])
        fig.add_hline(
            y=value,
            line_dash="dash",
            line_color="gray",
            annotation_text=f"random map {value:.3f}",
            annotation_position="top right",
        )
    fig.update_layout(
        title=f"{TITLES[metric]} ({direction(metric)})",
        yaxis_title=TITLES[metric],
        height=380,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        showlegend=False,
    )
    return fig


def section(summary: pd.DataFrame) -> None:
    """The metric picker, the table and the chart."""
    metrics = present(summary)
    if not metrics:
        st.info("No metric of this evaluation has a value.")
        return
    state.default(state.BENCH_METRIC, metrics[0], allowed=metrics)
    metric = st.selectbox(
        "Rank by",
        metrics,
        key=state.BENCH_METRIC,
        format_func=lambda m: f"{TITLES[m]} {BETTER[m]} ({direction(m)})",
    )
    st.caption(
        f"**{TITLES[metric]}**: {MEANING[metric]}; {direction(metric)}. Each cell is the mean over images "
        "with its percentile bootstrap 95% interval (2000 resamples of the images). Arrows: "
        + ", ".join(f"{TITLES[m]} {BETTER[m]}" for m in metrics)
        + ". *vs. random*: whether the method's interval lies wholly on the better side of the random map's mean."
    )
    shown = table(summary, metric)
    config = {
        c: st.column_config.NumberColumn(format="%.3f") for c in shown.columns if c.endswith(("↓", "↑"))
    }
    st.dataframe(shown, hide_index=True, column_config=config)
    st.plotly_chart(figure(summary, metric))
    missing = [m for m in METRICS if m not in metrics]
    if missing:
        st.caption("Not in this evaluation: " + ", ".join(md(TITLES[m]) for m in missing) + ".")
